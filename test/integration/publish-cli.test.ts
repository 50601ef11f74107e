// `feuilleton export` and `feuilleton preview` as an author runs them, and the baseUrl check
// that stops a site from going out with links to the wrong address.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { runCli } from '../helpers/cli.ts';
import { parseFeed } from '../helpers/feeds-parse.ts';
import { generatedStory, makeProject, SAMPLE_STORY, type Project } from '../helpers/project.ts';

const BASE_URL = 'https://serial.example.org/tale';

describe('feuilleton export DIR', () => {
  let project: Project;
  let out: string;

  before(() => {
    project = makeProject({ story: generatedStory(60), settings: { baseUrl: BASE_URL } });
    const app = project.open();
    try {
      assert.ok(app.store.installments.count().total >= 3);
      for (const n of [1, 2]) app.store.installments.markPublished(n, `2024-05-0${n}T08:00:00.000Z`);
    } finally {
      app.store.close();
    }
    out = mkdtempSync(path.join(tmpdir(), 'feuilleton-export-cli-'));
  });

  after(() => {
    project.cleanup();
    rmSync(out, { recursive: true, force: true });
  });

  test('writes the three feeds, the home page and one page per published installment, nothing unpublished', async () => {
    const site = path.join(out, 'site');
    const r = await runCli(['export', site, '-c', project.configPath]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `wrote 6 files to ${site} (links point at ${BASE_URL}: host the copy there)`);
    for (const file of [
      'feed.xml',
      'atom.xml',
      'feed.json',
      'index.html',
      'installments/1/index.html',
      'installments/2/index.html',
    ]) {
      assert.ok(existsSync(path.join(site, file)), file);
    }
    assert.ok(!existsSync(path.join(site, 'installments', '3')), 'installment 3 is not published');
    for (const [file, format] of [
      ['feed.xml', 'rss'],
      ['atom.xml', 'atom'],
      ['feed.json', 'json'],
    ] as const) {
      const feed = parseFeed(readFileSync(path.join(site, file)), format);
      assert.equal(feed.bozo, 0, `${file}: ${feed.problems.join('; ')}`);
      assert.deepEqual(
        feed.entries.map((e) => e.id),
        [`${BASE_URL}/installments/2`, `${BASE_URL}/installments/1`],
        file,
      );
    }
    const home = readFileSync(path.join(site, 'index.html'), 'utf8');
    assert.ok(
      home.includes(
        `<link rel="alternate" type="application/atom+xml" title="A Generated Tale (Atom)" href="${BASE_URL}/atom.xml">`,
      ),
    );
    assert.ok(home.includes(`href="${BASE_URL}/installments/2"`) && !home.includes(`${BASE_URL}/installments/3`));
  });

  test('a file where the folder should be: one line naming it, exit code 1', async () => {
    const file = path.join(out, 'not-a-folder');
    writeFileSync(file, '');
    const r = await runCli(['export', file, '-c', project.configPath]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`^feuilleton: ${file}: cannot write the static site there \\(\\w+\\); give a folder you can write to`),
    );
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });
});

describe('feuilleton preview [N]', () => {
  let project: Project;
  let out: string;

  before(() => {
    project = makeProject({ story: generatedStory(60) });
    out = mkdtempSync(path.join(tmpdir(), 'feuilleton-preview-cli-'));
  });

  after(() => {
    project.cleanup();
    rmSync(out, { recursive: true, force: true });
  });

  test('writes installment N as the HTML and text a reader gets, and PNG screenshots with --png', async () => {
    const r = await runCli(['preview', '2', '--png', '--out', out, '-c', project.configPath]);
    assert.equal(r.code, 0, r.stderr);
    const files = [
      'installment-2.html',
      'installment-2.txt',
      'installment-2-desktop.png',
      'installment-2-mobile.png',
    ].map((f) => path.join(out, f));
    assert.deepEqual(r.stdout.trim().split('\n'), files);
    assert.match(readFileSync(files[0]!, 'utf8'), /<h1[^>]*>Part 2<\/h1>/);
    assert.match(readFileSync(files[1]!, 'utf8'), /^Subject: A Generated Tale — Part 2\n\n/);
    for (const png of files.slice(2))
      assert.deepEqual(
        readFileSync(png).subarray(0, 8),
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        png,
      );
  });

  test('refuses an installment that does not exist, or N that is not a number of 1 or more', async () => {
    const missing = await runCli(['preview', '999', '--out', out, '-c', project.configPath]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^feuilleton: installment 999 does not exist; the story has \d+ installments/);
    for (const bad of ['0', 'two']) {
      const r = await runCli(['preview', bad, '--out', out, '-c', project.configPath]);
      assert.equal(r.code, 1, bad);
      assert.match(r.stderr, /N must be a whole number of 1 or more/, bad);
    }
  });
});

describe('baseUrl: every link in emails, feeds and pages is built on it', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'feuilleton-baseurl-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    [
      'missing from a config file in production',
      { production: true },
      /: baseUrl is missing; set it to the site's public address/,
    ],
    ['relative', { baseUrl: '/tale' }, /: baseUrl must be an absolute http\(s\) URL/],
    ['without a scheme', { baseUrl: 'serial.example.org' }, /: baseUrl must be an absolute http\(s\) URL/],
    ['with a query', { baseUrl: 'https://serial.example.org/?ref=feed' }, /: baseUrl must not have a query/],
  ];
  for (const [name, settings, message] of cases) {
    test(`${name}: the command stops before doing anything, naming the file and the key`, async () => {
      const config = path.join(dir, `${name.replaceAll(' ', '-')}.yaml`);
      writeFileSync(config, stringify({ story: { file: SAMPLE_STORY }, ...settings }));
      const r = await runCli(['export', path.join(dir, 'site'), '-c', config]);
      assert.equal(r.code, 1);
      assert.ok(r.stderr.startsWith(`feuilleton: ${config}: `), r.stderr);
      assert.match(r.stderr, message);
      assert.ok(!existsSync(path.join(dir, 'site')), 'nothing written');
      assert.ok(!existsSync(path.join(dir, 'data')), 'no database created');
    });
  }
});
