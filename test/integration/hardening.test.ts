// Going live, the unglamorous part: what is purged, what /healthz admits, which database
// files are refused at open, and how a failure the operator must fix reads on the terminal.
// Real SQLite files, the real server, the CLI as a child process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { startServing } from '../../src/commands/serve.ts';
import { failureLine } from '../../src/failures.ts';
import { Housekeeping } from '../../src/subscribers/housekeeping.ts';
import { CLI, cleanEnv, runCli, type CliResult } from '../helpers/cli.ts';
import { makeProject, type Project } from '../helpers/project.ts';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function project(settings: Record<string, unknown> = {}): Project {
  const p = makeProject({ settings });
  cleanups.push(() => p.cleanup());
  return p;
}

const DAY = 86_400_000;
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A pino logger whose lines land in `lines`, parsed. */
function capturingLogger(lines: Array<Record<string, unknown>>) {
  return pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
}

/** The CLI failed the way an operator should see it: exit 1, one line on stderr, no stack. */
function assertOneLine(r: CliResult, pattern: RegExp): void {
  assert.equal(r.code, 1, `exit code 1\n${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line on stderr:\n${r.stderr}`);
  assert.match(lines[0]!, /^feuilleton: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
}

/** Overwrites the header of a page in the middle of the subscribers table: a damaged file, as a failing disk leaves it. */
function damage(file: string): void {
  const db = new Database(file, { readonly: true });
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const leaves = db
    .prepare(`SELECT pageno FROM dbstat WHERE name = 'subscribers' AND pagetype = 'leaf' ORDER BY pageno`)
    .pluck()
    .all() as number[];
  db.close();
  assert.ok(leaves.length > 2, 'the subscribers table spans several pages');
  const page = leaves[Math.floor(leaves.length / 2)]!;
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.alloc(64, 0xff), 0, 64, (page - 1) * pageSize);
  closeSync(fd);
}

/** A project whose database holds a few hundred readers, closed and checkpointed. */
function populated(): Project {
  const p = project();
  const app = p.open();
  for (let i = 0; i < 400; i++) app.store.subscribers.create({ email: `reader${i}@example.org`, status: 'active' });
  app.store.close();
  return p;
}

describe('housekeeping: expired tokens and readers who never confirmed are purged', () => {
  test('purges tokens expired over a day ago and pending readers older than pendingDays; keeps readers, recent requests and their tokens', () => {
    const p = project();
    const app = p.open();
    cleanups.push(() => app.store.close());
    const { subscribers, tokens } = app.store;
    const now = Date.now();
    const at = (days: number) => new Date(now + days * DAY).toISOString();

    const stale = subscribers.create({ email: 'stale@example.org', status: 'pending', consentIp: '192.0.2.1' });
    const staleToken = tokens.issue(stale.id, 48);
    const recent = subscribers.create({ email: 'recent@example.org', status: 'pending', at: at(2) });
    const recentToken = tokens.issue(recent.id, 24 * 7.5); // expired half a day before the clock below
    const oldToken = tokens.issue(recent.id, 24 * 6); // two days before
    const reader = subscribers.create({ email: 'reader@example.org', status: 'active', at: at(-400) });
    const usedToken = tokens.issue(reader.id, 48);
    tokens.consume(usedToken);
    // A former reader asked to come back and never confirmed: back to unsubscribed, history kept.
    const returning = subscribers.create({ email: 'returning@example.org', status: 'active', at: at(-400) });
    subscribers.unsubscribe(returning.id);
    subscribers.renewConsent(returning.id, '192.0.2.2');
    const returningToken = tokens.issue(returning.id, 48);
    // Asked 8 days ago and again today: the link mailed today must keep working.
    const askedAgain = subscribers.create({ email: 'again@example.org', status: 'pending' });
    const askedAgainToken = tokens.issue(askedAgain.id, 24 * 9);

    const lines: Array<Record<string, unknown>> = [];
    const housekeeping = new Housekeeping({
      store: app.store,
      pendingDays: 7,
      log: capturingLogger(lines),
      clock: () => new Date(now + 8 * DAY),
    });
    assert.deepEqual(housekeeping.run(), { tokens: 4, pending: 1, lapsed: 1 });

    assert.equal(subscribers.get(stale.id), undefined, 'never confirmed within 7 days: gone, with the consent record');
    assert.deepEqual(tokens.check(staleToken), { ok: false, reason: 'unknown' });
    assert.equal(subscribers.get(recent.id)?.status, 'pending');
    assert.equal(
      tokens.check(recentToken).ok,
      true,
      'expired less than a day before the clock: kept, so a late click is told "expired"',
    );
    assert.deepEqual(tokens.check(oldToken), { ok: false, reason: 'unknown' });
    assert.equal(subscribers.get(reader.id)?.status, 'active');
    assert.deepEqual(tokens.check(usedToken), { ok: false, reason: 'unknown' }, 'a used token goes once expired');
    const back = subscribers.get(returning.id)!;
    assert.equal(back.status, 'unsubscribed');
    assert.ok(back.confirmedAt && back.unsubscribedAt);
    assert.deepEqual(tokens.check(returningToken), { ok: false, reason: 'unknown' });
    assert.equal(subscribers.get(askedAgain.id)?.status, 'pending', 'a request whose link still works is kept');
    assert.equal(tokens.check(askedAgainToken).ok, true);

    const logged = lines.find((l) => /purged/.test(String(l.msg)));
    assert.ok(logged, 'the purge is logged');
    assert.match(
      String(logged.msg),
      /purged 4 expired token\(s\) and 1 unconfirmed reader\(s\); 1 unconfirmed comeback\(s\) set back to unsubscribed/,
    );

    assert.deepEqual(housekeeping.run(), { tokens: 0, pending: 0, lapsed: 0 }, 'a second pass finds nothing');
  });

  test('runs at start and then on its interval until stopped', async () => {
    const p = project();
    const app = p.open();
    cleanups.push(() => app.store.close());
    let clock = Date.now();
    const housekeeping = new Housekeeping({
      store: app.store,
      pendingDays: 1,
      log: pino({ level: 'silent' }),
      clock: () => new Date(clock),
      everyMs: 20,
    });
    cleanups.push(() => housekeeping.stop());
    app.store.subscribers.create({
      email: 'first@example.org',
      status: 'pending',
      at: new Date(clock - 2 * DAY).toISOString(),
    });
    housekeeping.start();
    assert.equal(app.store.subscribers.byEmail('first@example.org'), undefined, 'purged at start');

    app.store.subscribers.create({ email: 'second@example.org', status: 'pending' });
    clock += 2 * DAY;
    await waitFor(() => app.store.subscribers.byEmail('second@example.org') === undefined);
    housekeeping.stop();
    clock += 2 * DAY;
    app.store.subscribers.create({ email: 'third@example.org', status: 'pending' });
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(app.store.subscribers.byEmail('third@example.org')?.status, 'pending', 'nothing runs after stop()');
  });

  test('serve purges at start', async () => {
    const p = project();
    const app = p.open();
    app.store.subscribers.create({
      email: 'forgotten@example.org',
      status: 'pending',
      at: new Date(Date.now() - 8 * DAY).toISOString(),
    });
    app.store.subscribers.create({
      email: 'reader@example.org',
      status: 'active',
      at: new Date(Date.now() - 80 * DAY).toISOString(),
    });
    const lines: Array<Record<string, unknown>> = [];
    const serving = await startServing(app, capturingLogger(lines), { host: '127.0.0.1', port: 0 });
    cleanups.push(() => serving.stop());
    assert.equal(app.store.subscribers.byEmail('forgotten@example.org'), undefined);
    assert.equal(app.store.subscribers.byEmail('reader@example.org')?.status, 'active');
    assert.ok(
      lines.some((l) => /purged .*1 unconfirmed reader/.test(String(l.msg))),
      'logged',
    );
  });
});

async function waitFor(condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('/healthz tells the truth about the database', () => {
  async function serve(p: Project, clock: () => Date = () => new Date()) {
    const app = p.open();
    const serving = await startServing(app, pino({ level: 'silent' }), { host: '127.0.0.1', port: 0, clock });
    cleanups.push(() => serving.stop());
    const health = async () => {
      const res = await fetch(new URL('/healthz', serving.url));
      return { status: res.status, body: (await res.json()) as { status: string; reason?: string } };
    };
    return { app, health };
  }

  test('503 with a reason when the database cannot grow (disk full), 200 again once there is room', async () => {
    const { app, health } = await serve(project());
    assert.deepEqual(await health(), { status: 200, body: { status: 'ok' } });

    // What a full disk looks like to SQLite: no page can be added, writes fail with SQLITE_FULL.
    const { db } = app.store;
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
    const isFull = (err: unknown) => (err as { code?: string }).code === 'SQLITE_FULL';
    assert.throws(() => {
      for (let i = 0; ; i++) app.store.subscribers.create({ email: `filler${i}@example.org`, status: 'active' });
    }, isFull);
    // An insert that failed may have needed two pages; take the last free one too.
    assert.throws(() => {
      for (let i = 0; ; i++) app.store.meta.set(`filler${i}`, '.'.repeat(4096));
    }, isFull);
    const full = await health();
    assert.equal(full.status, 503);
    assert.equal(full.body.status, 'error');
    assert.match(full.body.reason ?? '', /^database cannot be written: database or disk is full/);

    db.pragma('max_page_count = 1073741823');
    assert.equal((await health()).status, 200);
  });

  test('503 when the file is damaged under a running server (quick_check, run at most once a minute)', async () => {
    const p = populated();
    let now = Date.now();
    const { health } = await serve(p, () => new Date(now));
    assert.equal((await health()).status, 200);

    // Another connection moves everything into the main file, then the disk rots a page.
    const file = p.config().paths.db;
    const other = new Database(file);
    other.pragma('wal_checkpoint(TRUNCATE)');
    other.close();
    damage(file);

    now += 30_000;
    assert.equal(
      (await health()).status,
      200,
      'the last check is reused for a minute: quick_check reads the whole file',
    );
    now += 31_000;
    const damaged = await health();
    assert.equal(damaged.status, 503);
    assert.match(damaged.body.reason ?? '', /^database damaged: /);
  });
});

describe('a database file that is empty, not SQLite, or damaged is refused at open and left as it was', () => {
  const cases: Array<[string, (file: string) => void]> = [
    ['an empty (0-byte) file', (file) => writeFileSync(file, '')],
    [
      'a file that is not SQLite',
      (file) => writeFileSync(file, 'subscribers: ann@example.org, bob@example.org\n'.repeat(200)),
    ],
    ['a damaged database', (file) => damage(file)],
  ];
  for (const [name, spoil] of cases) {
    test(name, async () => {
      const p = populated();
      const file = p.config().paths.db;
      spoil(file);
      const before = readFileSync(file);
      for (const command of ['status', 'installments']) {
        const r = await runCli([command, '-c', p.configPath]);
        assertOneLine(r, new RegExp(`${esc(file)}: .*restore it from a backup, or move it away to start afresh`));
        assert.equal(r.stdout, '');
      }
      assert.ok(readFileSync(file).equals(before), 'the file is byte for byte what it was');
      assert.equal(
        existsSync(`${file}-wal`) && statSync(`${file}-wal`).size > 0,
        false,
        'nothing was written beside it either',
      );
    });
  }
});

/** `feuilleton ARGS` with the size of any file it writes limited (`ulimit -f`): past it the kernel refuses writes, as on a full disk. */
function runCliWithFileLimit(blocks: number, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const child = spawn(
    'sh',
    ['-c', `ulimit -f ${blocks}; exec "$0" "$@"`, process.execPath, '--import', 'tsx', CLI, ...args],
    { env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('failures the operator must fix print one line, and the stack only with LOG_LEVEL=debug', () => {
  test('the database cannot be written (disk full): one line naming the database, nothing imported', async () => {
    const p = project();
    p.open().store.close();
    const csv = path.join(p.dir, 'big.csv');
    writeFileSync(csv, `email\n${Array.from({ length: 20_000 }, (_, i) => `reader${i}@example.org`).join('\n')}\n`);
    const file = p.config().paths.db;
    const r = await runCliWithFileLimit(1000, ['subscribers', 'import', csv, '-c', p.configPath]);
    assertOneLine(
      r,
      new RegExp(`${esc(file)}: cannot write the database \\(.*\\); check that the disk has free space`),
    );
    const app = p.open();
    assert.equal(app.store.subscribers.countByStatus().active, 0, 'the import was rolled back');
    app.store.close();

    const debug = await runCliWithFileLimit(1000, ['subscribers', 'import', csv, '-c', p.configPath], {
      LOG_LEVEL: 'debug',
    });
    assert.equal(debug.code, 1);
    assert.match(debug.stderr, /^feuilleton: .*cannot write the database/);
    assert.match(debug.stderr, /^\s+at .*importActive/m, 'the stack, for a bug report');
  });

  test(
    'no space left on the disk (ENOSPC) while writing a file: one line saying so',
    { skip: !existsSync('/dev/full') && 'no /dev/full here' },
    async () => {
      const p = project();
      const out = path.join(p.dir, 'preview');
      mkdirSync(out);
      // /dev/full answers every write with ENOSPC, as a full disk does.
      symlinkSync('/dev/full', path.join(out, 'installment-1.html'));
      const r = await runCli(['preview', '1', '--out', out, '-c', p.configPath]);
      // The write reports no path (it is on an open file), so the line cannot name it.
      assertOneLine(r, /^feuilleton: no space left on the disk; free some space, then run the command again$/);
    },
  );

  test('a backup path that cannot be written: one line naming it, nothing left behind', async () => {
    const p = project();
    const target = path.join(p.dir, 'story.txt', 'backup.db'); // under a regular file
    const r = await runCli(['backup', target, '-c', p.configPath]);
    assertOneLine(
      r,
      new RegExp(
        `cannot write the backup to ${esc(target)} \\(${esc(path.join(p.dir, 'story.txt'))} is a file\\); choose a file in a folder you can write to`,
      ),
    );
    const deeper = path.join(p.dir, 'story.txt', 'backups', 'backup.db');
    assertOneLine(await runCli(['backup', deeper, '-c', p.configPath]), /\(a part of the path is a file\)/);
    const proc = await runCli(['backup', '/proc/feuilleton-backup.db', '-c', p.configPath]);
    assertOneLine(
      proc,
      /cannot write the backup to \/proc\/feuilleton-backup\.db \(.+\); choose a file in a folder you can write to/,
    );
    assert.equal(existsSync('/proc/feuilleton-backup.db'), false);
  });

  test('the line for each kind of failure, whichever command meets it', () => {
    const db = () => '/srv/serial/data/feuilleton.db';
    const { SqliteError } = Database;
    assert.equal(
      failureLine(new SqliteError('database disk image is malformed', 'SQLITE_CORRUPT'), db),
      '/srv/serial/data/feuilleton.db: the database is damaged (database disk image is malformed); restore it from a backup, or move it away to start afresh',
    );
    assert.equal(
      failureLine(new SqliteError('database or disk is full', 'SQLITE_FULL'), db),
      '/srv/serial/data/feuilleton.db: cannot write the database (database or disk is full); check that the disk has free space and is working, then run the command again',
    );
    assert.match(
      failureLine(new SqliteError('attempt to write a readonly database', 'SQLITE_READONLY'), db),
      /^\/srv\/serial\/data\/feuilleton\.db: cannot open the database for writing/,
    );
    const denied = Object.assign(new Error("EACCES: permission denied, open '/srv/site/index.html'"), {
      code: 'EACCES',
      path: '/srv/site/index.html',
    });
    assert.equal(
      failureLine(denied, db),
      '/srv/site/index.html: cannot write there (permission denied); choose a place this user may write to',
    );
    assert.equal(
      failureLine(new TypeError('x is not a function'), db),
      'unexpected error: x is not a function (run with LOG_LEVEL=debug for details)',
    );
  });

  test('a YAML alias bomb in the config: one line naming the file', async () => {
    const p = project();
    const levels = ['story: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 8; i++)
      levels.push(
        `x${i}: &${String.fromCharCode(97 + i)} [${Array(9)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(',')}]`,
      );
    writeFileSync(p.configPath, levels.join('\n') + '\n');
    const r = await runCli(['status', '-c', p.configPath]);
    assertOneLine(r, new RegExp(`${esc(p.configPath)}: too many YAML aliases`));
  });
});
