// Feeds, installment pages, private feeds and the static export, through the real server
// and read back with parsers we did not write (Python feedparser, newsboat).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { exportStatic } from '../../src/publish/export.ts';
import { Links } from '../../src/links.ts';
import { escapeHtml, ratingNotice } from '../../src/render/fragment.ts';
import { normalizeForCompare } from '../helpers/story-text.ts';
import type { StoredInstallment } from '../../src/store/installments.ts';
import { parseFeed, type ParsedFeed } from '../helpers/feeds-parse.ts';
import { emailStoryHtml, emailStoryText, plainText, startSite, storyHtml, type Site } from '../helpers/feeds-site.ts';
import { makeProject, type Project } from '../helpers/project.ts';

const BASE_URL = 'http://127.0.0.1:3000';
const links = new Links(BASE_URL, 'unused: only unsigned links are built here');

const COVER = 'https://img.example.org/cover.png?size=large&v=2';
const STORY_TITLE = `Fish & Chips <Special> "Edition" ]]> &amp; co`;
const PART_TITLE = `Part {n}: <b>&amp;</b> 'q' "q" ]]> ]]>`;
const HOSTILE = `She wrote <script>alert("x")</script> & signed it 'Tom' ]]> and ]]> again, <b>twice</b> &amp; more.`;
/** Typed line by line: the lines must survive in every channel. */
const LETTER = 'Dear Tom,\nthe lamps are lit.\nYours, A.';

/** Paragraph k starts with a marker no other paragraph contains, to search the output for it. */
function storyText(paragraphs: number, variant = ''): string {
  const words = 'the lamp was lit at dusk and the ledger kept its own account of every night along the mole'.split(' ');
  const paras = Array.from({ length: paragraphs }, (_, k) => {
    const body = Array.from({ length: 30 }, (_, i) => words[(i * 7 + k) % words.length]).join(' ');
    return `Paragraph${k + 1}${variant} ${body}.`;
  });
  paras.splice(1, 0, HOSTILE);
  paras.splice(2, 0, LETTER);
  paras.splice(4, 0, '* * *');
  return `Title: Header Title\nBy Test Author\nSummary: A summary with <tags> & "quotes".\nRating: M\nCategory: Drama <3, A&B "q"\n\n${paras.join('\n\n')}\n`;
}

const execFileAsync = promisify(execFile);

const FEEDS = [
  { path: '/feed.xml', format: 'rss', type: 'application/rss+xml; charset=utf-8' },
  { path: '/atom.xml', format: 'atom', type: 'application/atom+xml; charset=utf-8' },
  { path: '/feed.json', format: 'json', type: 'application/feed+json; charset=utf-8' },
] as const;

const published = (site: Site): StoredInstallment[] => site.app.store.installments.published();
const unpublished = (site: Site): StoredInstallment[] =>
  site.app.store.installments.all().filter((i) => !i.publishedAt);
/** The first paragraph marker of an installment (see storyText). */
const markerOf = (inst: StoredInstallment): string =>
  /^Paragraph\d+/.exec(inst.blocks.find((b) => b.kind === 'paragraph' && b.text.startsWith('Paragraph'))!.text)![0];

async function fetchFeed(
  site: Site,
  feed: (typeof FEEDS)[number],
): Promise<{ res: Response; body: Buffer; parsed: ParsedFeed }> {
  const res = await site.get(feed.path);
  const body = Buffer.from(await res.arrayBuffer());
  return { res, body, parsed: parseFeed(body, feed.format) };
}

const newestFirst = (list: StoredInstallment[]) => [...list].sort((a, b) => b.number - a.number);

describe('feeds and installment pages', () => {
  let project: Project;
  let site: Site;

  before(async () => {
    project = makeProject({
      story: storyText(14),
      settings: {
        story: { file: 'story.txt', title: STORY_TITLE, image: COVER },
        split: { targetWords: 60, partTitle: PART_TITLE },
      },
    });
    site = await startSite(project);
    assert.ok(
      site.app.store.installments.count().total >= 6,
      'the story splits into enough installments to keep some unpublished',
    );
    for (const n of [1, 2, 3]) site.app.store.installments.markPublished(n, `2024-03-0${n}T07:00:00.000Z`);
  });

  after(async () => {
    await site.stop();
    project.cleanup();
  });

  it('serves RSS, Atom and JSON Feed that independent parsers read without complaint, newest first, published only', async () => {
    const expected = newestFirst(published(site));
    for (const feed of FEEDS) {
      const { res, parsed } = await fetchFeed(site, feed);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), feed.type);
      assert.equal(parsed.bozo, 0, `${feed.path}: ${parsed.problems.join('; ')}`);
      assert.equal(parsed.title, STORY_TITLE, feed.path);
      assert.equal(parsed.language, 'en', feed.path);
      assert.equal(parsed.image, COVER, feed.path);
      assert.deepEqual(
        parsed.entries.map((e) => e.id),
        expected.map((i) => links.installment(i.number)),
        feed.path,
      );
      assert.deepEqual(
        parsed.entries.map((e) => e.link),
        expected.map((i) => links.installment(i.number)),
      );
      assert.deepEqual(
        parsed.entries.map((e) => e.title),
        expected.map((i) => i.title),
        `${feed.path}: titles with < & quotes and ]]> come back intact`,
      );
      assert.ok(expected[0]!.title.includes(']]> ]]>'));
      // XML forbids "<" in attributes and feed@6 does not escape it: Atom terms carry a look-alike.
      const categories = ['Drama <3', 'A&B "q"', 'Rating: M'].map((c) =>
        feed.format === 'atom' ? c.replace('<', '\uFF1C') : c,
      );
      for (const e of parsed.entries) assert.deepEqual(e.tags, categories, feed.path);
    }
    assert.equal(parseFeed((await fetchFeed(site, FEEDS[0])).body, 'rss').version, 'rss20');
    assert.equal(parseFeed((await fetchFeed(site, FEEDS[1])).body, 'atom').version, 'atom10');
  });

  it('gives each installment the same text in every feed, on its web page and in both parts of its email', async () => {
    const notice = ratingNotice(site.app.info)!;
    assert.equal(notice, 'Rated M — for adult readers');
    const feeds = await Promise.all(FEEDS.map((f) => fetchFeed(site, f)));
    assert.ok(
      published(site).some((i) => i.blocks.some((b) => b.text === LETTER)),
      'the letter is published',
    );
    for (const inst of published(site)) {
      const page = await site.get(`/installments/${inst.number}`);
      assert.equal(page.status, 200);
      const html = await page.text();
      // The text as a reader of the web page sees it: the reference for every other channel.
      const text = plainText(storyHtml(html));
      if (inst.number === 1)
        assert.ok(text.includes(HOSTILE), 'the hostile paragraph reads back as the author wrote it');
      const hasLetter = inst.blocks.some((b) => b.text === LETTER);
      if (hasLetter)
        assert.ok(
          html.includes('Dear Tom,<br>\nthe lamps are lit.<br>\nYours, A.'),
          'the letter keeps its lines on the page',
        );
      assert.ok(html.includes(notice), 'the page shows the rating notice');
      for (const [k, feed] of feeds.entries()) {
        const entry = feed.parsed.entries.find((e) => e.id === links.installment(inst.number))!;
        assert.equal(entry.content, `${notice} ${text}`, `${FEEDS[k]!.path} #${inst.number}`);
      }
      // The email a subscriber gets, from the server's own EmailRenderer.
      const prepared = await site.serving.runtime.renderer.installment(inst, {});
      const email = prepared.fill(
        Object.fromEntries(prepared.placeholders.map((p) => [p, `https://example.org/${p}`])),
      );
      assert.equal(plainText(emailStoryHtml(email.html)), text, `email HTML part #${inst.number}`);
      assert.equal(
        emailStoryText(email.text, inst.title),
        normalizeForCompare(text),
        `email text part #${inst.number}`,
      );
      if (hasLetter)
        assert.ok(email.text.includes('Dear Tom,\nthe lamps are lit.\nYours, A.'), 'and in the email text part');
      assert.ok(
        email.text.includes(notice) && plainText(email.html).includes(notice),
        'the email shows the rating notice',
      );
    }
  });

  it('escapes story text and titles on the page', async () => {
    const html = await (await site.get('/installments/1')).text();
    assert.ok(!html.includes('<script>'), 'no live script from the story');
    assert.ok(html.includes('&lt;script&gt;alert('));
    assert.ok(!html.includes('<b>twice</b>') && !html.includes('<b>&amp;</b>'));
    const title = /<title>([^<]*)<\/title>/.exec(html)![1]!;
    assert.equal(plainText(title), `${published(site)[0]!.title} · ${STORY_TITLE}`);
    assert.match(html, /<link rel="canonical" href="http:\/\/127\.0\.0\.1:3000\/installments\/1">/);
  });

  it('links each page to the previous and next published installment only', async () => {
    const last = published(site).at(-1)!.number;
    const first = await (await site.get('/installments/1')).text();
    assert.ok(!first.includes('rel="prev"'));
    assert.ok(first.includes(`rel="next" href="${links.installment(2)}"`));
    const end = await (await site.get(`/installments/${last}`)).text();
    assert.ok(end.includes(`rel="prev" href="${links.installment(last - 1)}"`));
    assert.ok(!end.includes('rel="next"'), 'no link to the unpublished next installment');
    assert.ok(end.includes('name="_csrf"'), 'the subscribe form is on the page');
  });

  it('answers conditional requests with 304 on ETag and on Last-Modified', async () => {
    for (const feed of FEEDS) {
      const res = await site.get(feed.path);
      const etag = res.headers.get('etag')!;
      const lastModified = res.headers.get('last-modified')!;
      assert.match(etag, /^"[A-Za-z0-9_-]{43}"$/, 'a strong ETag');
      assert.equal(lastModified, new Date(site.app.store.installments.lastPublishedAt()!).toUTCString());
      assert.equal(res.headers.get('cache-control'), 'public, max-age=300');

      const cases: Array<[Record<string, string>, number]> = [
        [{ 'if-none-match': etag }, 304],
        [{ 'if-none-match': `W/${etag}` }, 304],
        [{ 'if-none-match': `"stale", ${etag}` }, 304],
        [{ 'if-none-match': '"stale"' }, 200],
        [{ 'if-modified-since': lastModified }, 304],
        [{ 'if-modified-since': new Date(Date.parse(lastModified) + 86_400_000).toUTCString() }, 304],
        [{ 'if-modified-since': new Date(Date.parse(lastModified) - 1000).toUTCString() }, 200],
        // If-None-Match decides when both are sent.
        [{ 'if-none-match': '"stale"', 'if-modified-since': lastModified }, 200],
      ];
      for (const [headers, status] of cases) {
        const r = await site.get(feed.path, headers);
        assert.equal(r.status, status, `${feed.path} ${JSON.stringify(headers)}`);
        if (status === 304) {
          assert.equal((await r.arrayBuffer()).byteLength, 0);
          assert.equal(r.headers.get('etag'), etag);
        } else assert.equal(r.headers.get('etag'), etag);
      }
    }

    const before = await site.get('/atom.xml');
    const oldEtag = before.headers.get('etag')!;
    // The bytes are built once per publication, not per request: the served document is the same object.
    const cache = site.serving.feeds;
    const built = cache.feed('atom');
    await site.get('/atom.xml');
    assert.equal(cache.feed('atom'), built);
    const next = unpublished(site)[0]!;
    site.app.store.installments.markPublished(next.number, '2024-03-04T07:00:00.000Z');
    assert.notEqual(cache.feed('atom'), built, 'a publication rebuilds it');
    const afterPublish = await site.get('/atom.xml', { 'if-none-match': oldEtag });
    assert.equal(afterPublish.status, 200, 'a new publication changes the feed');
    assert.notEqual(afterPublish.headers.get('etag'), oldEtag);
    assert.equal(afterPublish.headers.get('last-modified'), 'Mon, 04 Mar 2024 07:00:00 GMT');
    assert.ok(
      parseFeed(Buffer.from(await afterPublish.arrayBuffer()), 'atom').entries.some(
        (e) => e.id === links.installment(next.number),
      ),
    );
  });

  it('never shows an unpublished installment: pages 404, feeds, home page and private feeds leave it out', async () => {
    const hidden = unpublished(site);
    assert.ok(hidden.length >= 2);
    const sub = site.app.store.subscribers.create({ email: 'reader@example.org', status: 'active' });
    const bodies = [
      ...(await Promise.all(FEEDS.map(async (f) => (await fetchFeed(site, f)).body.toString('utf8')))),
      await (await site.get('/')).text(),
      await (await site.get(`/feeds/${sub.feedToken}.xml`)).text(),
      await (await site.get(`/feeds/${sub.feedToken}.atom.xml`)).text(),
    ];
    for (const inst of hidden) {
      assert.equal(
        (await site.get(`/installments/${inst.number}`)).status,
        404,
        `installment ${inst.number} is not published`,
      );
      for (const body of bodies) {
        assert.ok(!body.includes(`${markerOf(inst)} `), `${markerOf(inst)} (installment ${inst.number}) leaked`);
        assert.ok(!body.includes(`/installments/${inst.number}"`) && !body.includes(`/installments/${inst.number}<`));
      }
    }
    for (const bad of ['0', '-1', '1.0', '01', 'abc', '999999', '99999999999999999999']) {
      assert.equal((await site.get(`/installments/${bad}`)).status, 404, bad);
    }
  });

  it('serves each subscriber a private feed: 404 for an unknown token, 410 once the subscription ended', async () => {
    const store = site.app.store;
    const sub = store.subscribers.create({ email: 'private@example.org', status: 'active' });
    const rss = await site.get(`/feeds/${sub.feedToken}.xml`);
    assert.equal(rss.status, 200);
    assert.equal(rss.headers.get('content-type'), 'application/rss+xml; charset=utf-8');
    assert.equal(rss.headers.get('cache-control'), 'private, max-age=300');
    const atom = await site.get(`/feeds/${sub.feedToken}.atom.xml`);
    assert.equal(atom.headers.get('content-type'), 'application/atom+xml; charset=utf-8');
    const expected = newestFirst(published(site)).map((i) => links.installment(i.number));
    for (const [res, format] of [
      [rss, 'rss'],
      [atom, 'atom'],
    ] as const) {
      const parsed = parseFeed(Buffer.from(await res.arrayBuffer()), format);
      assert.equal(parsed.bozo, 0, parsed.problems.join('; '));
      assert.deepEqual(
        parsed.entries.map((e) => e.id),
        expected,
        'broadcast mode: every published installment',
      );
    }
    const etag = atom.headers.get('etag')!;
    assert.equal((await site.get(`/feeds/${sub.feedToken}.atom.xml`, { 'if-none-match': etag })).status, 304);

    assert.equal((await site.get('/feeds/AAAAAAAAAAAAAAAAAAAAAA.xml')).status, 404);
    assert.equal((await site.get(`/feeds/${sub.feedToken}.json`)).status, 404);
    assert.equal((await site.get(`/feeds/${sub.feedToken}`)).status, 404);
    assert.equal((await site.get('/feeds/..%2Ffeuilleton.yaml')).status, 404);

    const pending = store.subscribers.create({ email: 'pending@example.org', status: 'pending' });
    assert.equal((await site.get(`/feeds/${pending.feedToken}.xml`)).status, 404, 'not confirmed yet: no feed');
    store.subscribers.unsubscribe(sub.id);
    assert.equal((await site.get(`/feeds/${sub.feedToken}.xml`)).status, 410);
    assert.equal(
      (await site.get(`/feeds/${sub.feedToken}.atom.xml`, { 'if-none-match': etag })).status,
      410,
      'no 304 for an ended subscription',
    );
    const bounced = store.subscribers.create({ email: 'bounced@example.org', status: 'active' });
    store.db.prepare(`UPDATE subscribers SET status = 'bounced' WHERE id = ?`).run(bounced.id);
    assert.equal((await site.get(`/feeds/${bounced.feedToken}.atom.xml`)).status, 410);
  });

  it('writes a static copy: feeds, home page without the form, one page per published installment', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'feuilleton-export-'));
    try {
      const files = await exportStatic(site.app, dir);
      const numbers = published(site).map((i) => i.number);
      assert.deepEqual(files, [
        'feed.xml',
        'atom.xml',
        'feed.json',
        'index.html',
        ...numbers.map((n) => `installments/${n}/index.html`),
      ]);
      for (const feed of FEEDS) {
        const bytes = readFileSync(path.join(dir, feed.path));
        assert.deepEqual(bytes, (await fetchFeed(site, feed)).body, `${feed.path} is what the server serves`);
      }
      const home = readFileSync(path.join(dir, 'index.html'), 'utf8');
      assert.ok(!home.includes('<form'), 'a static page cannot take subscriptions');
      assert.ok(home.includes(`href="${links.installment(numbers.at(-1)!)}"`));
      assert.ok(home.includes('href="http://127.0.0.1:3000/feed.xml"'));
      for (const n of numbers) {
        const page = readFileSync(path.join(dir, `installments/${n}/index.html`), 'utf8');
        assert.ok(!page.includes('<form'));
        assert.equal(storyHtml(page), storyHtml(await (await site.get(`/installments/${n}`)).text()));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps published ids and text when the unpublished rest of the story is edited and re-split', async () => {
    const snapshot = await Promise.all(FEEDS.map(async (f) => (await site.get(f.path)).headers.get('etag')));
    const feedsBefore = await Promise.all(FEEDS.map((f) => fetchFeed(site, f)));
    const publishedBefore = published(site);
    const restBefore = unpublished(site);
    await site.stop();

    // Same published paragraphs, a rewritten and longer remainder.
    const lastPublishedBlock = publishedBefore.at(-1)!;
    const keep = storyText(14).split('\n\n');
    const headerAndPublished = keep.slice(0, 1 + lastPublishedBlock.firstBlock + lastPublishedBlock.blockCount);
    const rewritten = storyText(20, 'rev')
      .split('\n\n')
      .slice(1 + lastPublishedBlock.firstBlock + lastPublishedBlock.blockCount);
    project.writeStory(`${[...headerAndPublished, ...rewritten].join('\n\n')}\n`);
    site = await startSite(project);

    assert.deepEqual(site.app.warnings, [], 'no published installment was touched');
    assert.notDeepEqual(
      unpublished(site).map((i) => i.hash),
      restBefore.map((i) => i.hash),
      'the remainder was re-split',
    );
    assert.deepEqual(
      published(site).map((i) => [i.number, i.hash, i.publishedAt]),
      publishedBefore.map((i) => [i.number, i.hash, i.publishedAt]),
    );
    for (const [k, feed] of FEEDS.entries()) {
      const now = await fetchFeed(site, feed);
      assert.deepEqual(
        now.parsed.entries,
        feedsBefore[k]!.parsed.entries,
        `${feed.path}: same ids, titles and content`,
      );
      assert.equal(
        now.res.headers.get('etag'),
        snapshot[k],
        `${feed.path}: byte-identical, so the ETag survives a restart`,
      );
      assert.ok(!now.body.toString('utf8').includes('rev '), 'the rewritten remainder is not published');
    }
  });

  it('loads in newsboat', { skip: !existsSync('/usr/bin/newsboat') && 'newsboat is not installed' }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'feuilleton-newsboat-'));
    try {
      for (const sub of ['xdg-config', 'xdg-data', 'xdg-cache']) mkdirSync(path.join(dir, sub));
      writeFileSync(path.join(dir, 'config'), '');
      const env = {
        PATH: process.env.PATH,
        HOME: dir,
        XDG_CONFIG_HOME: path.join(dir, 'xdg-config'),
        XDG_DATA_HOME: path.join(dir, 'xdg-data'),
        XDG_CACHE_HOME: path.join(dir, 'xdg-cache'),
        LANG: 'C.UTF-8',
      };
      const expected = newestFirst(published(site));
      const byGuid = [...expected].sort((a, b) =>
        links.installment(a.number).localeCompare(links.installment(b.number)),
      );
      const notice = ratingNotice(site.app.info)!;
      // newsboat reads Atom titles by their type, so they show as written; it reads RSS titles
      // as plain text, so these, which look like markup (see rssText in src/publish/feeds.ts),
      // show HTML-escaped, and nothing is lost or rendered.
      const cases = [
        { path: '/atom.xml', shownTitle: (i: StoredInstallment) => i.title },
        { path: '/feed.xml', shownTitle: (i: StoredInstallment) => i.title.replace(/[&<>]/g, escapeHtml) },
      ];
      for (const { path: feedPath, shownTitle } of cases) {
        // One cache per feed: newsboat keeps one article per guid, and both feeds share theirs.
        const name = feedPath.slice(1);
        writeFileSync(path.join(dir, `${name}.urls`), `${new URL(feedPath, site.serving.url).href}\n`);
        const files = [
          '-u',
          path.join(dir, `${name}.urls`),
          '-c',
          path.join(dir, `${name}.db`),
          '-C',
          path.join(dir, 'config'),
        ];
        // Asynchronous on purpose: the server answering newsboat runs in this very process.
        const newsboat = async (command: string) =>
          (await execFileAsync('newsboat', ['-x', command, ...files], { env, encoding: 'utf8', timeout: 30_000 }))
            .stdout;
        await newsboat('reload');
        assert.equal((await newsboat('print-unread')).trim(), `${expected.length} unread articles`, feedPath);

        const query =
          'import json,sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(json.dumps(c.execute("SELECT guid, title, author, content FROM rss_item ORDER BY guid").fetchall()))';
        const rows = JSON.parse(
          (await execFileAsync('/usr/bin/python3', ['-c', query, path.join(dir, `${name}.db`)], { encoding: 'utf8' }))
            .stdout,
        ) as Array<[string, string, string, string]>;
        assert.deepEqual(
          rows.map(([guid, title, author]) => [guid, title, author]),
          byGuid.map((i) => [links.installment(i.number), shownTitle(i), 'Test Author']),
          feedPath,
        );
        for (const [guid, , , content] of rows) {
          const n = Number(guid.split('/').pop());
          assert.equal(
            plainText(content),
            `${notice} ${plainText(storyHtml(await (await site.get(`/installments/${n}`)).text()))}`,
            `${feedPath} #${n}`,
          );
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('titles in RSS, which says nothing on whether a title is text or HTML', () => {
  const PLAIN = `Fish & Chips <3 "q" 'n' R&D ]]>`;
  const MARKUP = `<b>&amp;</b> &copy; ]]>`;
  const words = (k: number) =>
    Array.from({ length: 60 }, (_, i) => ['lamp', 'tide', 'rope', 'ink', 'gull'][(i + k) % 5]).join(' ');
  let project: Project;
  let site: Site;

  before(async () => {
    const story = `---\ntitle: Titles\nauthor: Test Author\n---\n\n# ${PLAIN}\n\n${words(1)}.\n\n# ${MARKUP}\n\n${words(2)}.\n`;
    project = makeProject({
      story,
      storyFile: 'story.md',
      settings: { story: { file: 'story.md' }, split: { targetWords: 50 } },
    });
    site = await startSite(project);
    assert.deepEqual(
      site.app.store.installments.all().map((i) => i.title),
      [PLAIN, MARKUP],
    );
    for (const n of [1, 2]) site.app.store.installments.markPublished(n, `2024-03-0${n}T07:00:00.000Z`);
  });

  after(async () => {
    await site.stop();
    project.cleanup();
  });

  it('writes text no HTML parser takes for markup as is, and HTML-escapes the rest; every reader gets the characters back', async () => {
    const rss = (await fetchFeed(site, FEEDS[0])).parsed;
    assert.equal(rss.bozo, 0, rss.problems.join('; '));
    // What a text-only reader (newsboat) shows: the plain title verbatim, the other escaped.
    assert.deepEqual(
      rss.entries.map((e) => e.rawTitle),
      [MARKUP.replace(/[&<>]/g, escapeHtml), PLAIN],
    );
    // What an HTML or guessing reader (feedparser) shows: both as written, in every format.
    for (const feed of FEEDS) {
      const { parsed } = await fetchFeed(site, feed);
      assert.deepEqual(
        parsed.entries.map((e) => e.title),
        [MARKUP, PLAIN],
        feed.path,
      );
    }
  });
});

describe('private feeds in paced mode', () => {
  let project: Project;
  let site: Site;

  before(async () => {
    project = makeProject({ story: storyText(10), settings: { mode: 'paced', split: { targetWords: 60 } } });
    site = await startSite(project);
  });

  after(async () => {
    await site.stop();
    project.cleanup();
  });

  it('holds exactly what the reader was sent, dated when sent, even ahead of the public calendar', async () => {
    const { store } = site.app;
    const reader = store.subscribers.create({ email: 'paced@example.org', status: 'active' });
    const other = store.subscribers.create({ email: 'other@example.org', status: 'active' });
    const send = (subscriberId: number, n: number) =>
      store.deliveries.markSent(store.deliveries.claim(subscriberId, n, null)!.id, `<${subscriberId}.${n}@test>`);
    send(reader.id, 1);
    send(reader.id, 2);
    send(other.id, 3);
    store.deliveries.claim(reader.id, 3, null); // in flight, not sent: not in the feed yet

    const res = await site.get(`/feeds/${reader.feedToken}.atom.xml`);
    const parsed = parseFeed(Buffer.from(await res.arrayBuffer()), 'atom');
    assert.equal(parsed.bozo, 0, parsed.problems.join('; '));
    assert.deepEqual(
      parsed.entries.map((e) => e.id),
      [links.installment(2), links.installment(1)],
    );
    const sentAt = store.deliveries.get(reader.id, 2)!.sentAt!;
    assert.equal(res.headers.get('last-modified'), new Date(sentAt).toUTCString());

    const etag = res.headers.get('etag')!;
    assert.equal((await site.get(`/feeds/${reader.feedToken}.atom.xml`, { 'if-none-match': etag })).status, 304);
    store.deliveries.markSent(store.deliveries.get(reader.id, 3)!.id, '<3@test>');
    const grown = await site.get(`/feeds/${reader.feedToken}.atom.xml`, { 'if-none-match': etag });
    assert.equal(grown.status, 200, 'a new delivery changes the private feed');
    assert.equal(parseFeed(Buffer.from(await grown.arrayBuffer()), 'atom').entries.length, 3);

    const publicFeed = parseFeed(Buffer.from(await (await site.get('/feed.xml')).arrayBuffer()), 'rss');
    assert.equal(publicFeed.bozo, 0);
    assert.equal(publicFeed.entries.length, 0, 'nothing is public yet');
    assert.equal((await site.get('/installments/1')).status, 404);
  });
});
