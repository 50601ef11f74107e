// The operator's housekeeping: an online backup taken while others use the database, and
// `init`, which scaffolds a project that works as it stands and never overwrites one.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { openApp } from '../../src/app.ts';
import { CONFIG_FILE_NAME, loadConfig, PACKAGE_ROOT } from '../../src/config.ts';
import { backup, init } from '../../src/commands/operate.ts';
import { UserError } from '../../src/errors.ts';
import { Store } from '../../src/store/index.ts';
import { runCli } from '../helpers/cli.ts';
import { makeProject } from '../helpers/project.ts';

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'feuilleton-operate-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Opens a backup file on its own, read-only, and checks it is a sound database. */
function openCopy(file: string): Store {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  cleanups.push(() => db.close());
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
  return new Store(db);
}

describe('feuilleton backup', () => {
  test('copies the committed database while another connection is in the middle of a write', async () => {
    const project = makeProject();
    cleanups.push(() => project.cleanup());
    const app = openApp(project.config());
    cleanups.push(() => app.store.close());
    for (let i = 0; i < 50; i++) app.store.subscribers.create({ email: `reader${i}@example.org`, status: 'active' });
    app.store.installments.markPublished(1);

    // A second process-like connection (serve, send) holds the write lock during the backup.
    const writer = Store.open(app.config.paths.db);
    cleanups.push(() => writer.close());
    writer.db.exec('BEGIN IMMEDIATE');
    writer.subscribers.create({ email: 'uncommitted@example.org', status: 'active' });

    const file = path.join(tempDir(), 'nested', 'copy.db');
    const result = await backup(app.store, file);
    writer.db.exec('COMMIT');
    assert.equal(result.file, file);
    assert.ok(result.pages > 0);

    const copy = openCopy(file);
    assert.equal(copy.subscribers.countByStatus().active, 50, 'committed rows only');
    assert.equal(copy.subscribers.byEmail('uncommitted@example.org'), undefined);
    assert.deepEqual(
      copy.installments.all().map((i) => [i.number, i.hash, i.publishedAt]),
      app.store.installments.all().map((i) => [i.number, i.hash, i.publishedAt]),
    );
    assert.equal(copy.meta.get('secret'), app.secret);
  });

  test('never overwrites an existing file', async () => {
    const project = makeProject();
    cleanups.push(() => project.cleanup());
    const app = openApp(project.config());
    cleanups.push(() => app.store.close());
    const file = path.join(tempDir(), 'precious.db');
    writeFileSync(file, 'an earlier backup');
    await assert.rejects(
      backup(app.store, file),
      (err: unknown) =>
        err instanceof UserError &&
        err.message === `${file} already exists; choose a new file name (backups never overwrite)`,
    );
    assert.equal(readFileSync(file, 'utf8'), 'an earlier backup');
  });

  test('the CLI writes a usable copy while the database is open elsewhere', async () => {
    const project = makeProject();
    cleanups.push(() => project.cleanup());
    const app = openApp(project.config());
    cleanups.push(() => app.store.close());
    app.store.subscribers.create({ email: 'ada@example.org', status: 'active' });
    const file = path.join(tempDir(), 'cli-copy.db');
    const r = await runCli(['backup', file, '-c', project.configPath]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^backup written to ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(\\d+ pages\\)\\n$`),
    );
    assert.equal(openCopy(file).subscribers.byEmail('ada@example.org')?.status, 'active');
  });
});

describe('feuilleton init', () => {
  test('scaffolds a commented config, the story and the templates, and the result opens as a project', () => {
    const dir = path.join(tempDir(), 'my-serial');
    const { files } = init(dir);
    assert.deepEqual(
      files.map((f) => path.relative(dir, f)),
      [
        CONFIG_FILE_NAME,
        path.join('story', 'the-lamplighters-ledger.txt'),
        'templates',
        'data',
        'package.json',
        '.gitignore',
      ],
    );
    assert.deepEqual(
      readdirSync(path.join(dir, 'templates')).sort(),
      readdirSync(path.join(PACKAGE_ROOT, 'templates')).sort(),
    );
    assert.ok(statSync(path.join(dir, 'data')).isDirectory());

    // The package's own commented config, pointed at the copied templates, without the sample's sender and postal address.
    const text = readFileSync(path.join(dir, CONFIG_FILE_NAME), 'utf8');
    const packageText = readFileSync(path.join(PACKAGE_ROOT, CONFIG_FILE_NAME), 'utf8');
    const lines = text.split('\n');
    const own = /templatesDir|^ {2}(file|from|postalAddress):/;
    assert.deepEqual(
      lines.filter((l) => !own.test(l)),
      packageText.split('\n').filter((l) => !own.test(l)),
    );
    assert.ok(lines.filter((l) => l.trimStart().startsWith('#')).length >= 30, 'settings are explained in comments');
    for (const key of ['cron:', 'catchUp:', 'templatesDir:']) {
      assert.match(
        lines.find((l) => l.trimStart().startsWith(key)) ?? '',
        /^\s*\w+: \S.*#\s*\S/,
        `${key} is set, with a comment`,
      );
    }

    const config = loadConfig({ configPath: path.join(dir, CONFIG_FILE_NAME), env: {} });
    assert.equal(config.paths.story, path.join(dir, 'story', 'the-lamplighters-ledger.txt'));
    assert.equal(config.paths.templates, path.join(dir, 'templates'), 'the project uses its own template copies');
    assert.equal(config.paths.db, path.join(dir, 'data', 'feuilleton.db'));
    const app = openApp(config);
    try {
      assert.ok(app.store.installments.count().total > 1);
      assert.equal(app.info.title, "The Lamplighter's Ledger");
    } finally {
      app.store.close();
    }
  });

  test('refuses to overwrite an existing project, or to fill a folder that has other things in it', () => {
    const dir = path.join(tempDir(), 'serial');
    init(dir);
    const configPath = path.join(dir, CONFIG_FILE_NAME);
    writeFileSync(configPath, '# my own settings\nmode: paced\n');
    assert.throws(
      () => init(dir),
      (err: unknown) =>
        err instanceof UserError &&
        err.message ===
          `${dir} already holds a feuilleton project (${CONFIG_FILE_NAME}); "init" never overwrites one (pick a new folder)`,
    );
    assert.equal(readFileSync(configPath, 'utf8'), '# my own settings\nmode: paced\n');

    const busy = path.join(tempDir(), 'notes');
    mkdirSync(busy);
    writeFileSync(path.join(busy, 'todo.txt'), 'write chapter 3');
    assert.throws(
      () => init(busy),
      (err: unknown) =>
        err instanceof UserError &&
        err.message === `${busy} is not empty; "init" only creates new projects (pick a new folder)`,
    );
    assert.deepEqual(readdirSync(busy), ['todo.txt']);

    const file = path.join(busy, 'todo.txt');
    assert.throws(
      () => init(file),
      (err: unknown) => err instanceof UserError && /is a file; "init" needs a new folder$/.test(err.message),
    );
  });

  test('the CLI scaffolds a project whose status works straight away, and refuses a second init', async () => {
    const dir = path.join(tempDir(), 'cli-serial');
    const made = await runCli(['init', dir]);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /^created:\n/);
    assert.match(made.stdout, /Next, in .*cli-serial:\n {2}npm install .*\n {2}npm start /);
    const status = await runCli(['status', '-c', path.join(dir, CONFIG_FILE_NAME)]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^Story:\s+The Lamplighter's Ledger by Odile Marchetti \(broadcast mode\)$/m);
    const again = await runCli(['init', dir]);
    assert.equal(again.code, 1);
    assert.equal(
      again.stderr,
      `feuilleton: ${dir} already holds a feuilleton project (${CONFIG_FILE_NAME}); "init" never overwrites one (pick a new folder)\n`,
    );
  });
});
