// Every kind of email as a reader's inbox sees it: the real bytes our SMTP transport sends
// (captured by smtp-server on 127.0.0.1), scored by SpamAssassin's local rules, and the
// installment drawn by Chromium in light and dark, on a desktop and on a phone.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { PACKAGE_ROOT } from '../../src/config.ts';
import { sendRun } from '../../src/deliver/send.ts';
import { createLogger } from '../../src/log.ts';
import { launchChromium } from '../../src/render/chromium.ts';
import { createRuntime } from '../../src/runtime.ts';
import { runCli } from '../helpers/cli.ts';
import { generatedStory, makeProject, type Project } from '../helpers/project.ts';
import { SmtpSink, type Received } from '../helpers/smtp-sink.ts';

const OUTPUT_DIR = path.join(PACKAGE_ROOT, 'test-output');
const KINDS = ['confirm', 'welcome', 'installment', 'last installment', 'the-end'] as const;
type Kind = (typeof KINDS)[number];

/** The kind of a received email, from its Message-ID (`<kind.…>`, `<installment.N.…>`). */
function kindOf(r: Received, last: number): Kind | undefined {
  const m = /^Message-ID:\s*<([a-z-]+)\.(\d+)?/im.exec(r.raw.toString('latin1'));
  if (!m) return undefined;
  if (m[1] === 'installment')
    return Number(m[2]) === last ? 'last installment' : Number(m[2]) === 1 ? 'installment' : undefined;
  return KINDS.find((k) => k === m[1]);
}

/**
 * One of each kind, as sent to a reader in paced mode through the whole sample story:
 * confirmation, welcome, installment 1, the last installment, The End.
 */
async function everyKind(): Promise<Map<Kind, Received>> {
  const sink = new SmtpSink();
  await sink.start();
  const project = makeProject({
    settings: {
      mode: 'paced',
      baseUrl: 'https://serial.example.org',
      mail: {
        smtpUrl: sink.url,
        from: "The Lamplighter's Ledger <serial@example.org>",
        postalAddress: 'Feuilleton Press, 1 Ropewalk Stair, Skelby Haven',
      },
    },
  });
  const app = project.open();
  const runtime = createRuntime(app, createLogger({ level: 'silent', pretty: false }));
  try {
    const pending = app.store.subscribers.create({ email: 'new.reader@example.com', status: 'pending' });
    runtime.notices.confirm(pending, 'https://serial.example.org/confirm?token=Zb7Qn2xYc4Lp9Rk1Vt6Hs3Md');
    const reader = app.store.subscribers.create({ email: 'reader@example.com', status: 'active' });
    runtime.notices.welcome(reader);
    await runtime.notices.drain();
    const last = app.store.installments.count().total;
    for (let i = 0; i < last; i++) await sendRun(runtime.send);
    await runtime.notices.drain();
    const byKind = new Map<Kind, Received>();
    for (const r of sink.received) {
      const kind = kindOf(r, last);
      if (kind) byKind.set(kind, r);
    }
    assert.deepEqual(
      [...KINDS].filter((k) => !byKind.has(k)),
      [],
      'one email of every kind',
    );
    return byKind;
  } finally {
    runtime.close();
    await sink.stop();
    project.cleanup();
  }
}

const spamassassin = spawnSync('spamassassin', ['--version'], { encoding: 'utf8' });
const NO_SPAMASSASSIN = spamassassin.error
  ? 'spamassassin is not installed (apt-get install spamassassin; .ci/run installs it)'
  : false;

/** SpamAssassin's verdict with local tests only (-L: no DNS or network checks): the score and the rules that hit. */
function spamScore(raw: Buffer): Promise<{ score: number; rules: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('spamassassin', ['-L', '-t'], { maxBuffer: 16 * 1024 * 1024 }, (err, stdout) => {
      if (err) return reject(new Error(`spamassassin failed: ${err.message}`));
      const details = /Content analysis details:\s+\((-?[\d.]+) points/.exec(stdout);
      if (!details) return reject(new Error(`no SpamAssassin report in:\n${stdout.slice(0, 2000)}`));
      const table = stdout
        .slice(stdout.indexOf('Content analysis details'))
        .split('\n')
        .filter((l) => /^\s*-?\d+\.\d+ [A-Z]/.test(l));
      resolve({ score: Number(details[1]), rules: table.join('\n') });
    });
    child.stdin!.end(raw);
  });
}

describe('every kind of email, in the inbox', () => {
  let mails: Map<Kind, Received>;
  before(async () => {
    mails = await everyKind();
  });

  it(
    'scores 0 or less with SpamAssassin (spamassassin -L -t) for every kind of email',
    { skip: NO_SPAMASSASSIN },
    async () => {
      const verdicts = await Promise.all(
        KINDS.map(async (kind) => ({ kind, ...(await spamScore(mails.get(kind)!.raw)) })),
      );
      for (const v of verdicts) assert.ok(v.score <= 0, `${v.kind} scores ${v.score}:\n${v.rules}`);
    },
  );

  it('carries the headers of its kind, on the wire', () => {
    const head = (kind: Kind) =>
      mails
        .get(kind)!
        .raw.toString('latin1')
        .split('\r\n\r\n')[0]!
        .replace(/\r\n[ \t]+/g, ' ');
    for (const kind of ['confirm', 'welcome'] as const)
      assert.match(head(kind), /^Auto-Submitted: auto-generated$/im, kind);
    for (const kind of ['installment', 'last installment', 'the-end'] as const)
      assert.doesNotMatch(head(kind), /^Auto-Submitted:/im, kind);
    for (const kind of KINDS) {
      assert.match(head(kind), /^List-Id: The Lamplighter's Ledger <the-lamplighter-s-ledger\.example\.org>$/im, kind);
      assert.doesNotMatch(head(kind), /^List-Unsubscribe: .*mailto:/im, kind);
      assert.doesNotMatch(head(kind), /^Precedence:/im, kind);
    }
  });

  describe('the installment in Chromium', () => {
    let browser: Browser;
    let html: string;

    before(async () => {
      const sink = new SmtpSink();
      html = (await sink.parse(mails.get('installment')!)).html as string;
      browser = await launchChromium();
      mkdirSync(OUTPUT_DIR, { recursive: true });
    });
    after(async () => {
      await browser?.close();
    });

    async function open(width: number, colorScheme: 'light' | 'dark'): Promise<Page> {
      const page = await browser.newPage({ viewport: { width, height: 900 }, colorScheme });
      // An email must stand on its own: nothing it shows may come from the network.
      await page.route('**/*', (route) => route.abort());
      await page.setContent(html);
      return page;
    }

    it('has a dark mode that differs from light and keeps body text at 7:1 or more in both', async () => {
      const shots: Buffer[] = [];
      for (const scheme of ['light', 'dark'] as const) {
        const page = await open(600, scheme);
        shots.push(await page.screenshot({ path: path.join(OUTPUT_DIR, `email-${scheme}-600.png`), fullPage: true }));
        const story = await contrasts(page, 'td.story p');
        assert.ok(story.length > 3, 'story paragraphs found');
        for (const c of story)
          assert.ok(c.ratio >= 7, `${scheme}: story text ${c.color} on ${c.background} is ${c.ratio.toFixed(2)}:1`);
        for (const c of await contrasts(page, 'td div, td a, h1'))
          assert.ok(c.ratio >= 4.5, `${scheme}: "${c.text}" ${c.color} on ${c.background} is ${c.ratio.toFixed(2)}:1`);
        await page.close();
      }
      assert.ok(!shots[0]!.equals(shots[1]!), 'the dark screenshot differs from the light one');
    });

    // About 42 characters a line: Georgia (what phones have) sets English prose at some 0.45 em a
    // character, so 18.7 em of column. Measured in ems, as this machine's fallback serif is wider.
    it('reads like a book on a 375 px phone: 16–20 px side margins, about 42 characters a line', async () => {
      for (const scheme of ['light', 'dark'] as const) {
        const page = await open(375, scheme);
        await page.screenshot({ path: path.join(OUTPUT_DIR, `email-${scheme}-375.png`), fullPage: true });
        const m = await page.evaluate<{ left: number; right: number; ems: number; scrollWidth: number }>(`(() => {
          const p = document.querySelector('td.story p');
          const rect = p.getBoundingClientRect();
          return { left: rect.left, right: window.innerWidth - rect.right, ems: rect.width / parseFloat(getComputedStyle(p).fontSize), scrollWidth: document.documentElement.scrollWidth };
        })()`);
        assert.ok(m.left >= 16 && m.left <= 20, `${scheme}: left margin ${m.left}px`);
        assert.ok(m.right >= 16 && m.right <= 20, `${scheme}: right margin ${m.right}px`);
        assert.ok(
          m.ems >= 18.5 && m.ems <= 19.5,
          `${scheme}: a column of ${m.ems.toFixed(1)} em, about ${Math.round(m.ems / 0.45)} characters of Georgia`,
        );
        assert.equal(m.scrollWidth, 375, 'nothing scrolls sideways');
        await page.close();
      }
    });
  });
});

interface Contrast {
  text: string;
  color: string;
  background: string;
  ratio: number;
}

/**
 * WCAG contrast of each visible element matching `selector` (with text of its own) against
 * the first opaque background behind it. Plain JavaScript: the test's TypeScript is
 * transformed with helpers the page does not have.
 */
const CONTRASTS = `(sel) => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lin = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
  const luminance = ([r, g, b]) => 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const bg = getComputedStyle(el).backgroundColor;
      const parts = rgb(bg);
      if (parts.length === 3 || parts[3] > 0) return bg;
    }
    return 'rgb(255, 255, 255)';
  };
  return [...document.querySelectorAll(sel)]
    .filter((el) => el.offsetHeight > 0 && [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim()))
    .map((el) => {
      const color = getComputedStyle(el).color;
      const bg = background(el);
      const [l1, l2] = [luminance(rgb(color)), luminance(rgb(bg))].sort((a, b) => b - a);
      return { text: el.textContent.trim().slice(0, 40), color, background: bg, ratio: (l1 + 0.05) / (l2 + 0.05) };
    });
}`;

const contrasts = (page: Page, selector: string): Promise<Contrast[]> =>
  page.evaluate(`(${CONTRASTS})(${JSON.stringify(selector)})`);

describe('size guard: Gmail clips an email over 102 KB', () => {
  let project: Project;
  before(() => {
    // The first installment is one paragraph of some 130 KB, and one sentence: nothing may split it.
    const huge = `The lamps were lit ${'one by one along the harbour wall and '.repeat(3000).trim()} so the night came.`;
    project = makeProject({
      story: `${generatedStory(0)}\n${huge}\n\n${generatedStory(30, 2, '').trim()}\n`,
      settings: { split: { targetWords: 400 } },
    });
  });
  after(() => project?.cleanup());

  it('installments and check name the installment whose email passes 90 KB, and what to do', async () => {
    const list = await runCli(['--config', project.configPath, 'installments']);
    assert.equal(list.code, 0, list.stderr);
    const warning = /installment 1's email is (\d+) KB of HTML/.exec(list.stdout + list.stderr);
    assert.ok(warning, list.stdout + list.stderr);
    assert.ok(Number(warning[1]) > 102, warning[0]);
    assert.match(list.stdout + list.stderr, /Gmail clips .* over 102 KB/);
    assert.doesNotMatch(list.stdout + list.stderr, /installment 2's email/);

    const json = JSON.parse((await runCli(['--config', project.configPath, 'installments', '--json'])).stdout) as {
      installments: Array<{ number: number; emailKB: number }>;
      warnings: string[];
    };
    assert.ok(json.installments[0]!.emailKB > 102 && json.installments[1]!.emailKB < 90);
    assert.ok(json.warnings.some((w) => w.startsWith("installment 1's email is")));

    const check = await runCli(['--config', project.configPath, 'check']);
    assert.match(check.stdout, /Warnings \(\d+\):[\s\S]*installment 1's email is \d+ KB of HTML/);
  });
});
