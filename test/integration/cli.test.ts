// The CLI as a user runs it: a child process, its output and its exit code.
import assert from 'node:assert/strict';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { makeProject } from '../helpers/project.ts';

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
    assert.match(lines[0]!, /^The Lamplighter's Ledger by Odile Marchetti \(title from story header\); \d+ installments/);
    assert.match(lines[2]!, /#\s+Title\s+Words\s+Min\s+First words\s+Published/);
    assert.match(lines[3]!, /^1\s+Part 1\s+\d+\s+\d+\s+The ledger hung on a nail in the …\s+no$/);
  });

  test('--json prints the same as JSON', async () => {
    const table = (await runCli(['installments', '-c', project.configPath])).stdout;
    const r = await runCli(['installments', '--json', '-c', project.configPath]);
    assert.equal(r.code, 0, r.stderr);
    const data = JSON.parse(r.stdout) as { installments: { number: number; title: string; words: number; minutes: number; published: boolean }[] };
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
      assert.match(r.stderr, new RegExp(`${p.configPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: unknown setting story\\.titel`));
    } finally {
      p.cleanup();
    }
  });
});
