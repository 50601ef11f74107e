// The CLI as a user runs it: a child process, its output and its exit code.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { PACKAGE_ROOT } from '../../src/config.ts';
import { runCli, spawnCli } from '../helpers/cli.ts';
import { makeProject } from '../helpers/project.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';

const COMMANDS = ['installments', 'serve', 'send', 'preview', 'status', 'subscribers', 'export', 'backup', 'init'];

/** Every file below `dir`, with its size: what a failed command must leave as it was. */
const filesIn = (dir: string): string[] =>
  (readdirSync(dir, { recursive: true }) as string[]).sort().map((f) => `${f} ${statSync(path.join(dir, f)).size}`);

describe('feuilleton installments', () => {
  const project = makeProject();
  after(() => project.cleanup());

  test('prints a table: number, title, words, minutes, first words, published', async () => {
    const r = await runCli(['installments', '-c', project.configPath]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(
      lines[0]!,
      /^The Lamplighter's Ledger by Odile Marchetti \(title from story header\); \d+ installments/,
    );
    assert.match(lines[2]!, /#\s+Title\s+Words\s+Min\s+First words\s+Published/);
    assert.match(lines[3]!, /^1\s+Part 1\s+\d+\s+\d+\s+The ledger hung on a nail in the …\s+no$/);
  });

  test('--json prints the same as JSON', async () => {
    const table = (await runCli(['installments', '-c', project.configPath])).stdout;
    const r = await runCli(['installments', '--json', '-c', project.configPath]);
    assert.equal(r.code, 0, r.stderr);
    const data = JSON.parse(r.stdout) as {
      installments: { number: number; title: string; words: number; minutes: number; published: boolean }[];
    };
    assert.ok(data.installments.length >= 3);
    for (const i of data.installments) {
      assert.match(table, new RegExp(`^${i.number}\\s+${i.title}\\s+${i.words}\\s+${i.minutes}\\s`, 'm'));
      assert.equal(i.published, false);
    }
  });

  test('a story without a title line: the user is told where the title came from', async () => {
    const p = makeProject({ story: 'It was raining.\n\nIt rained all week.\n', storyFile: 'wet-week.txt' });
    try {
      const r = await runCli(['installments', '-c', p.configPath]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^Wet week \(title from file name\)/);
    } finally {
      p.cleanup();
    }
  });
});

// Ten separate processes that only print: side by side, not one after another.
describe('help', { concurrency: true }, () => {
  test('feuilleton --version prints the package version', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')).version);
  });
  test('feuilleton --help lists the commands', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    for (const cmd of COMMANDS) assert.match(r.stdout, new RegExp(`^  ${cmd}\\b`, 'm'));
  });
  for (const cmd of COMMANDS) {
    test(`feuilleton ${cmd} --help`, async () => {
      const r = await runCli([cmd, '--help']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^Usage: feuilleton ${cmd}`));
    });
  }
});

describe('user errors: one line, non-zero exit, nothing changed', () => {
  test('bad story file', async () => {
    const p = makeProject({ story: '' });
    try {
      const before = filesIn(p.dir);
      const r = await runCli(['installments', '-c', p.configPath]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /story file .*story\.txt: is empty/);
      assert.deepEqual(filesIn(p.dir), before, 'no database or other file was created');
    } finally {
      p.cleanup();
    }
  });

  test('unknown config key names the key and the file', async () => {
    const p = makeProject();
    try {
      writeFileSync(p.configPath, 'story:\n  file: story.txt\n  titel: Oops\n');
      const before = filesIn(p.dir);
      const r = await runCli(['installments', '-c', p.configPath]);
      assert.equal(r.code, 1);
      assert.deepEqual(filesIn(p.dir), before, 'no database or other file was created');
      assert.match(
        r.stderr,
        new RegExp(`${p.configPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: unknown setting story\\.titel`),
      );
    } finally {
      p.cleanup();
    }
  });
});

describe('no config file: every command but init and --help stops, saying where it looked', () => {
  const empty = mkdtempSync(path.join(tmpdir(), 'feuilleton-noconfig-'));
  after(() => rmSync(empty, { recursive: true, force: true }));
  for (const args of [
    ['subscribers', 'add', 'reader@example.org'],
    ['status'],
    ['send'],
    ['check'],
    ['serve', '--port', '0'],
    ['installments'],
  ]) {
    test(args.join(' '), async () => {
      const r = await runCli(args, empty);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.ok(
        r.stderr.startsWith(`feuilleton: no config file: ${path.join(empty, 'feuilleton.yaml')} does not exist`),
        r.stderr,
      );
      assert.match(r.stderr, /FEUILLETON_CONFIG.*--config.*feuilleton init DIR/);
      assert.deepEqual(readdirSync(empty), [], 'no data folder or database created');
    });
  }
  test('--help still answers there', async () => {
    const r = await runCli(['status', '--help'], empty);
    assert.equal(r.code, 0, r.stderr);
  });
});

describe('serve: start-up problems are one line each', () => {
  test('a port already in use names the port and the fix', async () => {
    const project = makeProject();
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as { port: number };
    try {
      const r = await runCli(['serve', '-c', project.configPath, '--port', String(port)]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.doesNotMatch(r.stdout + r.stderr, /unexpected error|\n\s+at /);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `^feuilleton: port ${port} on 127\\.0\\.0\\.1 is already in use .*--port.*FEUILLETON_PORT.*server\\.port`,
        ),
      );
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
      project.cleanup();
    }
  });

  test('a bad FEUILLETON_PORT is blamed on the variable; every config problem is listed', async () => {
    const project = makeProject();
    try {
      writeFileSync(
        project.configPath,
        'story:\n  file: story.txt\nbaseUrl: http://127.0.0.1:3000\nmode: sometimes\ncolour: blue\n',
      );
      const r = await runCli(['status', '-c', project.configPath], PACKAGE_ROOT, { FEUILLETON_PORT: 'eighty' });
      assert.equal(r.code, 1);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 3, r.stderr);
      for (const line of lines) assert.ok(line.startsWith('feuilleton: '), line);
      assert.ok(
        lines.some((l) => l.startsWith('feuilleton: FEUILLETON_PORT=eighty ') && !l.includes(project.configPath)),
        r.stderr,
      );
      assert.ok(
        lines.some((l) => l.includes(`${project.configPath}: mode`)),
        r.stderr,
      );
      assert.ok(
        lines.some((l) => l.includes(`${project.configPath}: unknown setting colour`)),
        r.stderr,
      );
    } finally {
      project.cleanup();
    }
  });
});

describe('feuilleton send: Ctrl-C or SIGTERM part-way stops the run cleanly, and --resume finishes it', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    test(signal, async () => {
      const READERS = 120;
      const sink = new SmtpSink();
      await sink.start();
      // A slow relay, so the signal lands while messages are on the wire.
      sink.dataDelayMs = 25;
      const project = makeProject({
        settings: { mail: { smtpUrl: sink.url, from: 'The Ledger <serial@example.org>', maxConnections: 2 } },
      });
      try {
        const app = project.open();
        app.store.subscribers.importActive(
          Array.from({ length: READERS }, (_, i) => ({ email: `reader${i + 1}@example.com` })),
          'test',
        );
        app.store.close();
        const first = spawnCli(['--config', project.configPath, 'send']);
        let ended = false;
        void first.done.then(() => (ended = true));
        while (sink.count < 5 && !ended) await new Promise((r) => setTimeout(r, 10));
        assert.ok(!ended, `the send ended before it could be stopped:\n${first.output()}`);
        first.child.kill(signal);
        const stopped = await first.done;
        assert.equal(stopped.code, 2, first.output());
        assert.match(stopped.stdout, /stopped \(shutdown\); resume with: feuilleton send --resume/);
        assert.ok(sink.count < READERS, `stopped after ${sink.count} of ${READERS}`);
        const check = project.open();
        try {
          assert.equal(check.store.deliveries.countByStatus().sending, 0, 'nothing is left claimed');
        } finally {
          check.store.close();
        }

        const resumed = await runCli(['--config', project.configPath, 'send', '--resume']);
        assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
        const recipients = sink.received.flatMap((r) => r.to);
        assert.equal(recipients.length, READERS, 'every reader got the installment once');
        assert.equal(new Set(recipients).size, READERS);
      } finally {
        await sink.stop();
        project.cleanup();
      }
    });
  }
});
