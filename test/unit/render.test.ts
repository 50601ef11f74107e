import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { convert } from 'html-to-text';
import { loadConfig, PACKAGE_ROOT, type Config } from '../../src/config.ts';
import { Links } from '../../src/links.ts';
import { UserError } from '../../src/errors.ts';
import { EmailRenderer } from '../../src/render/email.ts';
import { installmentHtml, SCENE_BREAK_LINE } from '../../src/render/fragment.ts';
import { installmentText, normalizeForCompare } from '../helpers/story-text.ts';
import { compileMjml, mjmlWorkerRunning } from '../../src/render/mjml.ts';
import type { StoredInstallment } from '../../src/store/installments.ts';
import type { StoryInfo } from '../../src/story/info.ts';
import type { Block } from '../../src/story/types.ts';

const escape = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const para = (text: string): Block => ({ kind: 'paragraph', text, html: escape(text) });

const HOSTILE = `She wrote <script>alert("x")</script> & signed it 'Tom' ]]> before dawn.`;
const blocks: Block[] = [
  para('The lamps of Harrow Street were lit at dusk, one by one, by a man nobody ever saw arrive or leave again.'),
  para(HOSTILE),
  { kind: 'scene-break', text: 'o0o' },
  { kind: 'heading', text: '## Morning', title: 'Morning', level: 2, html: 'Morning' },
  para('By   morning\nthe ledger was gone.'),
];
const paragraphs = blocks.flatMap((b) => (b.kind === 'paragraph' ? [b.text] : []));

const inst = (over: Partial<StoredInstallment> = {}): StoredInstallment => ({
  number: 3,
  title: 'Part 3',
  blocks,
  wordCount: 60,
  minutes: 5,
  hash: 'abc',
  firstBlock: 0,
  blockCount: blocks.length,
  frozenAt: null,
  publishedAt: null,
  ...over,
});

const baseInfo: StoryInfo = {
  title: 'The Lamplighter’s Ledger',
  titleSource: 'config',
  author: 'A. Writer',
  summary: undefined,
  rating: 'R',
  adult: true,
  categories: [],
  warnings: undefined,
  details: [],
  notes: [],
  language: 'en',
};

const defaults = loadConfig({ cwd: tmpdir(), env: {} });
const POSTAL = 'Feuilleton Press, 1 Rue de la Paix, Paris';

function renderer(
  opts: {
    mode?: Config['mode'];
    info?: Partial<StoryInfo>;
    postalAddress?: string;
    templatesDir?: string;
    compileMjml?: typeof compileMjml;
  } = {},
) {
  const config: Config = {
    ...defaults,
    mode: opts.mode ?? 'broadcast',
    mail: { ...defaults.mail, postalAddress: opts.postalAddress ?? POSTAL },
  };
  return new EmailRenderer({
    templatesDir: opts.templatesDir ?? path.join(PACKAGE_ROOT, 'templates'),
    info: { ...baseInfo, ...opts.info },
    config,
    links: new Links('https://serial.example.org', 'k'.repeat(32)),
    compileMjml: opts.compileMjml,
  });
}

const VALUES = {
  unsubscribeUrl: 'https://u.example/unsub?t=1',
  feedUrl: 'https://u.example/feed',
  nextUrl: 'https://u.example/next?t=2',
  readToken: 'reader.token',
  preferencesUrl: 'https://u.example/preferences?t=3',
};
const visibleText = (html: string) => normalizeForCompare(convert(html, { wordwrap: false }));

describe('fragment', () => {
  it('renders paragraphs, headings and a neutral scene-break ornament', () => {
    const html = installmentHtml(blocks);
    assert.match(html, /<p>She wrote &lt;script&gt;/);
    assert.match(html, /<h2>Morning<\/h2>/);
    assert.match(html, /<p class="scene-break" role="separator" aria-label="scene break">\* \* \*<\/p>/);
    assert.doesNotMatch(html, /o0o/);
  });

  it("keeps the author's exact words in plain text", () => {
    const text = installmentText(blocks);
    assert.equal(text.split('\n\n').length, blocks.length);
    for (const p of paragraphs) assert.ok(text.includes(p), p);
    assert.ok(text.includes(`\n\n${SCENE_BREAK_LINE}\n\n`));
    assert.ok(SCENE_BREAK_LINE.startsWith('  '));
  });

  it('normalizes whitespace only', () => {
    assert.equal(normalizeForCompare('  a \n\t b&amp;  '), 'a b&amp;');
  });
});

describe('EmailRenderer.installment', () => {
  it('runs MJML once per installment and returns the cached object', async () => {
    let mjmlRuns = 0;
    const r = renderer({
      compileMjml: (source, filePath) => {
        mjmlRuns++;
        return compileMjml(source, filePath);
      },
    });
    const first = await r.installment(inst(), { nextDate: null });
    const again = await r.installment(inst(), { nextDate: null });
    assert.equal(again, first);
    assert.equal(mjmlRuns, 1);
    const [a, b] = await Promise.all([r.installment(inst({ number: 4 }), {}), r.installment(inst({ number: 4 }), {})]);
    assert.equal(a, b);
    assert.equal(mjmlRuns, 2);
    const edited = await r.installment(inst({ hash: 'def' }), { nextDate: null });
    assert.notEqual(edited, first);
    assert.equal(mjmlRuns, 3);
  });

  it('escapes values in the HTML, not in the text, and rejects line breaks or missing values', async () => {
    const email = await renderer().installment(inst(), {});
    const url = 'https://u.example/unsub?a=1&b="<x>"';
    const filled = email.fill({ ...VALUES, unsubscribeUrl: url });
    assert.ok(filled.html.includes('href="https://u.example/unsub?a=1&amp;b=&quot;&lt;x&gt;&quot;"'));
    assert.ok(!filled.html.includes(url));
    assert.ok(filled.text.includes(`Unsubscribe\n${url}\n`));
    assert.throws(() => email.fill({ ...VALUES, feedUrl: 'https://x\r\nBcc: a@b.c' }), /line break/);
    assert.throws(() => email.fill({ ...VALUES, feedUrl: 'https://x\n' }), /line break/);
    assert.throws(() => email.fill({ unsubscribeUrl: VALUES.unsubscribeUrl }), /"feedUrl" is missing/);
    assert.doesNotMatch(filled.html + filled.text, /ph[0-9a-f]{24}_/, 'no placeholder left over');
  });

  it('escapes story text in the HTML and keeps it exact in the text part', async () => {
    const { html, text } = (await renderer().installment(inst(), {})).fill(VALUES);
    assert.ok(!html.includes('<script>'));
    assert.ok(html.includes('She wrote &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; signed it'));
    assert.ok(text.includes(HOSTILE));
  });

  it('has every paragraph in both the HTML and the text part', async () => {
    const { html, text } = (await renderer().installment(inst(), {})).fill(VALUES);
    const shown = visibleText(html);
    const plain = normalizeForCompare(text);
    for (const p of paragraphs) {
      assert.ok(shown.includes(normalizeForCompare(p)), `HTML lacks: ${p}`);
      assert.ok(plain.includes(normalizeForCompare(p)), `text lacks: ${p}`);
    }
    assert.ok(text.includes(`\n${SCENE_BREAK_LINE}\n`));
    assert.ok(text.includes('\nMorning\n'), 'headings are not upper-cased');
  });

  it('uses the story title and installment title as subject, with title, reading time and read-online link', async () => {
    const { subject, html, text } = (await renderer().installment(inst(), {})).fill(VALUES);
    assert.equal(subject, 'The Lamplighter’s Ledger — Part 3');
    assert.match(html, /<html lang="en"/);
    assert.ok(text.includes('About 5 minutes'));
    assert.ok(text.includes('Read online\nhttps://serial.example.org/installments/3\n'));
    assert.ok(text.includes('Your private feed\nhttps://u.example/feed\n'));
  });

  it('shows the rating notice only for adult stories', async () => {
    const adult = (await renderer().installment(inst(), {})).fill(VALUES);
    assert.ok(adult.text.includes('Rated R — for adult readers'));
    assert.ok(visibleText(adult.html).includes('Rated R — for adult readers'));
    const general = (await renderer({ info: { rating: 'G', adult: false } }).installment(inst(), {})).fill(VALUES);
    assert.doesNotMatch(general.html + general.text, /Rated|adult readers/);
  });

  it('offers "send me the next one now" only in paced mode, and the next date only in broadcast mode', async () => {
    const nextDate = '2026-03-12T07:00:00Z';
    const paced = await renderer({ mode: 'paced' }).installment(inst(), { nextDate });
    assert.ok(paced.placeholders.includes('nextUrl'));
    const p = paced.fill(VALUES);
    assert.ok(p.html.includes(`href="${VALUES.nextUrl}"`));
    assert.ok(p.text.includes(`\nSend me the next one now\n${VALUES.nextUrl}\n`));
    assert.doesNotMatch(p.text, /Next installment:/);

    const broadcast = await renderer().installment(inst(), { nextDate });
    assert.ok(!broadcast.placeholders.includes('nextUrl'));
    const b = broadcast.fill(VALUES);
    assert.ok(!b.html.includes(VALUES.nextUrl) && !b.text.includes('Send me the next one'));
    assert.match(b.text, /Next installment: Thursday, March 12, 2026/);
    assert.doesNotMatch(
      (await renderer().installment(inst(), { nextDate: null })).fill(VALUES).text,
      /Next installment:/,
    );
  });

  it('includes the postal address only when configured', async () => {
    const withAddress = (await renderer().installment(inst(), {})).fill(VALUES);
    assert.ok(withAddress.text.includes(POSTAL));
    assert.ok(visibleText(withAddress.html).includes(POSTAL));
    const without = (await renderer({ postalAddress: '' }).installment(inst(), {})).fill(VALUES);
    assert.ok(!without.text.includes('Feuilleton Press'));
  });

  it('has an inbox preview: "Part N of M" and the first words, hidden without a white-on-white colour, padded, kept out of the text part', async () => {
    const r = new EmailRenderer({
      templatesDir: path.join(PACKAGE_ROOT, 'templates'),
      info: baseInfo,
      config: { ...defaults, mail: { ...defaults.mail, postalAddress: POSTAL } },
      links: new Links('https://serial.example.org', 'k'.repeat(32)),
      progress: () => ({ total: 12, published: 2 }),
    });
    const { html, text } = (await r.installment(inst(), {})).fill(VALUES);
    const hidden = /<div class="preheader" style="([^"]*)">([^<]*)<\/div>/.exec(html);
    assert.ok(hidden, 'preheader div');
    const [, style, content] = hidden;
    assert.match(style!, /display:none/);
    assert.doesNotMatch(
      style!,
      /color/,
      'no colour of its own: white on white scores as spam (HTML_FONT_LOW_CONTRAST)',
    );
    assert.doesNotMatch(html, /<div[^>]*display:none[^>]*color:#fff/i, 'no other white hidden text either');
    const words = content!.replace(/(&#847;|&zwnj;|&nbsp;)+$/, '');
    assert.ok(words.startsWith('Part 3 of 12 · The lamps of Harrow Street were lit at dusk'), words);
    assert.ok(words.endsWith('…') && words.length <= 120, words);
    assert.ok(
      content!.slice(words.length).length >= 80 * '&#847;&zwnj;&nbsp;'.length,
      'padded so the preview stops after it',
    );
    assert.equal(text.split('The lamps of Harrow Street').length, 2, 'first line appears once in text');
    assert.doesNotMatch(
      text,
      /Part 3 of 12 · The lamps|[\u034f\u200c]/,
      'the preview and its padding stay out of the text part',
    );
  });

  it('has a dark mode: color-scheme meta tags and prefers-color-scheme styles', async () => {
    const { html } = (await renderer().installment(inst(), {})).fill(VALUES);
    assert.match(html, /<meta name="color-scheme" content="light dark">/);
    assert.match(html, /<meta name="supported-color-schemes" content="light dark">/);
    assert.match(html, /@media \(prefers-color-scheme: dark\)/);
  });

  it('keeps paragraphs, the lines of verse and each link on a line of its own in the text part', async () => {
    const verse: Block = {
      kind: 'paragraph',
      text: 'The lamp is lit,\nthe tide is out,\nand nobody is there.',
      html: 'The lamp is lit,<br>\nthe tide is out,<br>\nand nobody is there.',
    };
    const link: Block = {
      kind: 'paragraph',
      text: 'See https://example.org/map',
      html: 'See <a href="https://example.org/map">https://example.org/map</a>',
    };
    const { text } = (
      await renderer({ mode: 'paced' }).installment(inst({ blocks: [...blocks, verse, link] }), {})
    ).fill({ ...VALUES, readToken: 'r' });
    assert.equal(text.split('https://example.org/map').length, 2, 'a link whose words are its address is written once');
    assert.ok(text.includes('\n\nThe lamp is lit,\nthe tide is out,\nand nobody is there.\n'), text);
    assert.ok(text.includes(`\n\n${paragraphs[0]}\n\n`), 'paragraphs apart, by a blank line');
    for (const url of [VALUES.nextUrl, VALUES.unsubscribeUrl, VALUES.feedUrl])
      assert.ok(text.split('\n').includes(url), `${url} on a line of its own`);
    for (const line of text.split('\n').filter((l) => l.includes('://') && !l.startsWith('See ')))
      assert.match(line, /^https?:\/\/\S+$/, 'every address alone on its line');
    assert.doesNotMatch(text, /^ ?· /m, 'no line starts with a separator');
  });
});

describe("PreparedEmail.fillFor: the reader's values come from one place", () => {
  const links = new Links('https://serial.example.org', 'k'.repeat(32));
  const reader = { id: 7, feedToken: 'f'.repeat(32) };

  it('fills each placeholder with the link Links signs for that reader, and hands back the unsubscribe link', async () => {
    const email = await renderer({ mode: 'paced' }).installment(inst(), { nextDate: null });
    const { email: filled, unsubscribeUrl } = email.fillFor(reader);
    const expected = links.forReader(reader, ['unsubscribeUrl', ...email.placeholders]);
    assert.deepEqual(filled, email.fill(expected));
    assert.equal(unsubscribeUrl, links.unsubscribe(reader));
    for (const name of email.placeholders) assert.ok(filled.text.includes(expected[name]!), name);
    const other = email.fillFor({ id: 8, feedToken: 'g'.repeat(32) });
    assert.notEqual(other.unsubscribeUrl, unsubscribeUrl, 'signed per reader');
  });

  it("an email's own value (a confirmation link) goes in beside the reader's", async () => {
    const email = await renderer().confirm();
    const { email: filled } = email.fillFor(reader, { confirmUrl: 'https://c.example/confirm?token=a&b' });
    assert.ok(filled.html.includes('href="https://c.example/confirm?token=a&amp;b"'));
    assert.throws(() => email.fillFor(reader), /"confirmUrl" is missing/);
  });
});

describe('EmailRenderer notices', () => {
  it('confirm: a button with the confirm link, expiry, and no unsubscribe', async () => {
    const r = renderer();
    const email = await r.confirm();
    assert.equal(await r.confirm(), email);
    assert.deepEqual(email.placeholders, ['confirmUrl']);
    const { subject, html, text } = email.fill({ confirmUrl: 'https://c.example/confirm?token=a&b' });
    assert.equal(subject, 'Confirm your subscription to The Lamplighter’s Ledger');
    assert.ok(html.includes('href="https://c.example/confirm?token=a&amp;b"'));
    assert.ok(text.includes('Confirm my subscription\nhttps://c.example/confirm?token=a&b\n'));
    assert.ok(text.includes('expires in 48 hours'));
    assert.ok(text.includes('ignore this email'));
  });

  it('welcome: explains what happens next in each mode', async () => {
    const values = {
      unsubscribeUrl: VALUES.unsubscribeUrl,
      feedUrl: VALUES.feedUrl,
      preferencesUrl: VALUES.preferencesUrl,
    };
    const broadcast = (await renderer().welcome()).fill(values);
    assert.ok(broadcast.text.includes('\nhttps://serial.example.org/\n'));
    assert.match(broadcast.text, /regular schedule/);
    const paced = (await renderer({ mode: 'paced' }).welcome()).fill(values);
    assert.match(paced.text, /Installment 1 arrives/);
    assert.ok(paced.text.includes(`Unsubscribe\n${VALUES.unsubscribeUrl}`));
  });

  it('the end: thanks the reader and keeps the unsubscribe link', async () => {
    const email = await renderer().theEnd();
    assert.deepEqual(email.placeholders, ['unsubscribeUrl']);
    const { subject, text } = email.fill({ unsubscribeUrl: VALUES.unsubscribeUrl });
    assert.equal(subject, 'The Lamplighter’s Ledger — The End');
    assert.match(text, /The End/);
    assert.match(text, /Thank you/);
  });
});

describe('MJML compiler (worker thread)', () => {
  // Any existing file will do: MJML wants one for the errors it reports and for mj-include.
  const TEMPLATE = path.join(PACKAGE_ROOT, 'templates', 'the-end.mjml');
  const SIMPLE = (text: string) =>
    `<mjml><mj-body><mj-section><mj-column><mj-text>${text}</mj-text></mj-column></mj-section></mj-body></mjml>`;

  it('compiles concurrent sources in one worker, each to its own HTML, and stops the worker once idle', async () => {
    const htmls = await Promise.all(['first', 'second', 'third'].map((t) => compileMjml(SIMPLE(t), TEMPLATE)));
    htmls.forEach((html, i) => assert.match(html, new RegExp(['first', 'second', 'third'][i]!)));
    assert.equal(mjmlWorkerRunning(), true, 'kept for the next template of the same send');
    const deadline = Date.now() + 10_000;
    while (mjmlWorkerRunning() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(mjmlWorkerRunning(), false, 'its memory is given back when idle');
    assert.match(await compileMjml(SIMPLE('again'), TEMPLATE), /again/, 'and it starts again on demand');
  });

  it("an author's broken template fails with an error naming the file and the fault", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'feuilleton-templates-'));
    try {
      cpSync(path.join(PACKAGE_ROOT, 'templates'), dir, { recursive: true });
      const file = path.join(dir, 'the-end.mjml');
      writeFileSync(file, `${readFileSync(file, 'utf8')}<mj-bogus>x</mj-bogus>\n`);
      await assert.rejects(renderer({ templatesDir: dir }).theEnd(), (err: Error) => {
        assert.ok(err instanceof UserError);
        assert.ok(err.message.startsWith(`${file} is not valid MJML`), err.message);
        assert.match(err.message, /mj-bogus/);
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
