// The serial as a reader lives it, in both modes, through the real server, a real SMTP
// server and the CLI: where they are in the story, what the header tells them before they
// subscribe, reading online what they were sent, and how it ends.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ParsedMail } from 'mailparser';
import { startServing, type Serving } from '../../src/commands/serve.ts';
import { sendNext, sendRun } from '../../src/deliver/send.ts';
import { createLogger } from '../../src/log.ts';
import { Store } from '../../src/store/index.ts';
import { runCli } from '../helpers/cli.ts';
import { parseFeed } from '../helpers/feeds-parse.ts';
import { Client } from '../helpers/form-client.ts';
import { generatedStory, makeProject, type Project } from '../helpers/project.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';

const silent = createLogger({ level: 'silent', pretty: false });
const HEADER =
  'Title: Small Bells\nAuthor: R. Quill\nRating: T\nPairing: Mara/Ines\nCategory: Drama\nWarnings: Grief <b>loud</b>\nTimeline/ Spoilers: after the flood\nA short story, complete.\n';
const STORY = generatedStory(24, 3, HEADER);

interface Env {
  project: Project;
  sink: SmtpSink;
  serving: Serving;
  client: Client;
  close(): Promise<void>;
}

async function serve(mode: 'broadcast' | 'paced'): Promise<Env> {
  const sink = new SmtpSink();
  await sink.start();
  const project = makeProject({
    story: STORY,
    settings: { mode, split: { targetWords: 300 }, mail: { smtpUrl: sink.url, from: 'Bells <bells@example.org>' } },
  });
  const serving = await startServing(project.open(), silent, { host: '127.0.0.1', port: 0 });
  return {
    project,
    sink,
    serving,
    client: new Client(serving.url),
    async close() {
      await serving.stop();
      await sink.stop();
      project.cleanup();
    },
  };
}

/** The href of the first link whose text matches. */
function href(mail: ParsedMail, text: RegExp): string | undefined {
  const html = String(mail.html);
  for (const m of html.matchAll(/<a\b[^>]*href="([^"]+)"[^>]*>([\s\S]*?)<\/a>/g)) {
    if (text.test(m[2]!.replace(/<[^>]+>/g, ''))) return m[1]!.replaceAll('&amp;', '&');
  }
  return undefined;
}

const installmentMails = async (env: Env, to: string): Promise<ParsedMail[]> =>
  Promise.all(
    env.sink
      .to(to)
      .filter((r) => /^Message-ID:\s*<installment\./im.test(r.raw.toString('latin1')))
      .map((r) => env.sink.parse(r)),
  );

describe('paced mode: reading online what you were sent', () => {
  let env: Env;
  before(async () => (env = await serve('paced')));
  after(() => env.close());

  it('"Read online" opens each installment for its reader ahead of the public calendar, privately, and for nobody else', async () => {
    const { app, send } = env.serving.runtime;
    const total = app.store.installments.count().total;
    assert.ok(total >= 4, `the story has ${total} installments`);
    const reader = app.store.subscribers.create({ email: 'ahead@example.org', status: 'active' });
    const other = app.store.subscribers.create({ email: 'other@example.org', status: 'active' });
    assert.equal((await sendNext(send, reader.id)).status, 'sent');
    assert.equal((await sendNext(send, reader.id)).status, 'sent');
    const [first, second] = await installmentMails(env, reader.email);
    assert.ok(first && second);

    const url = href(first, /^Read online$/)!;
    assert.match(url, /\/installments\/1\?reader=/);
    const page = await env.client.get(url);
    assert.equal(page.res.status, 200, page.body);
    assert.equal(page.res.headers.get('cache-control'), 'no-store');
    assert.match(page.res.headers.get('x-robots-tag') ?? '', /noindex/);
    assert.match(page.body, /<meta name="robots" content="noindex">/);
    assert.match(page.body, new RegExp(`Part 1 of ${total}`));
    assert.match(page.body, /Pairing/, 'the first installment shows the header fields');

    // The second email's "previous" link, and its own read-online link, work for this reader.
    assert.equal((await env.client.get(href(second, /Previous/)!)).res.status, 200);
    const two = await env.client.get(href(second, /^Read online$/)!);
    assert.equal(two.res.status, 200);
    assert.match(
      two.body,
      /rel="prev" href="[^"]*\/installments\/1\?reader=/,
      'the pager keeps the reader on their own pages',
    );
    assert.doesNotMatch(two.body, /rel="next"/, 'nothing past what they were sent');

    const token = new URL(url).searchParams.get('reader')!;
    assert.equal((await env.client.get(`/installments/3?reader=${token}`)).res.status, 404, 'not what they were sent');
    assert.equal(
      (await env.client.get('/installments/1')).res.status,
      404,
      'the public page still follows the calendar',
    );
    assert.equal(
      (await env.client.get(`/installments/1?reader=${token.slice(0, -2)}xx`)).res.status,
      404,
      'a forged token',
    );
    const otherToken = env.serving.runtime.links.readerToken(other);
    assert.equal(
      (await env.client.get(`/installments/1?reader=${otherToken}`)).res.status,
      404,
      'another reader who was sent nothing',
    );
  });

  it('the last installment offers no "next one now", asking anyway answers that it was the end, and "The End" brings the whole story as EPUB', async () => {
    const { app, send, links } = env.serving.runtime;
    const total = app.store.installments.count().total;
    const reader = app.store.subscribers.create({ email: 'finisher@example.org', status: 'active' });
    for (let n = 1; n <= total; n++) assert.equal((await sendNext(send, reader.id)).status, 'sent');
    const mails = await installmentMails(env, reader.email);
    assert.equal(mails.length, total);
    assert.ok(href(mails[0]!, /next one now/i), 'earlier installments offer the next one');
    const last = mails.at(-1)!;
    assert.equal(href(last, /next one now/i), undefined);
    assert.match(String(last.text), /The End/);

    const token = new URL(links.next(reader)).searchParams.get('token')!;
    for (let i = 0; i < app.config.delivery.nextNowPerHour + 2; i++) {
      const res = await env.client.post('/next', { token });
      assert.equal(res.res.status, 200, res.body);
      assert.match(res.body, /That was the end/);
    }
    assert.match((await env.client.get(`/next?token=${token}`)).body, /That was the end/);

    await sendRun(send, { kind: 'scheduled' });
    await env.sink.waitFor((r) =>
      r.some((m) => m.to.includes(reader.email) && /^Message-ID:\s*<the-end\./im.test(m.raw.toString('latin1'))),
    );
    const theEnd = await env.sink.parse(
      env.sink.to(reader.email).find((m) => /^Message-ID:\s*<the-end\./im.test(m.raw.toString('latin1')))!,
    );
    const epub = await env.client.get(href(theEnd, /EPUB/)!);
    assert.equal(epub.res.status, 200);
    assert.equal(epub.res.headers.get('content-type'), 'application/epub+zip');
    assert.equal(epub.res.headers.get('cache-control'), 'no-store');
    const whole = await env.client.get(href(theEnd, /whole story/i)!);
    assert.equal(whole.res.status, 200);
    assert.ok(app.store.installments.count().published < total, 'ahead of the public calendar');
    assert.equal((await env.client.get('/story.epub')).res.status, 404, 'not public before the story is');
  });
});

describe('broadcast mode: from the first installment to The End', () => {
  let env: Env;
  before(async () => (env = await serve('broadcast')));
  after(() => env.close());

  it('every email says where the reader is; the last ends with "The End" and a link to the whole story', async () => {
    const { app, send } = env.serving.runtime;
    const total = app.store.installments.count().total;
    const reader = app.store.subscribers.create({ email: 'along@example.org', status: 'active' });
    for (let n = 1; n <= total; n++) assert.equal((await sendRun(send, { kind: 'scheduled' })).sent, 1);
    const mails = await installmentMails(env, reader.email);
    assert.equal(mails.length, total);
    for (const [i, mail] of mails.entries()) {
      const text = String(mail.text);
      assert.match(text, new RegExp(`Part ${i + 1} of ${total}`));
      assert.match(text, /by R\. Quill/);
      const title = app.store.installments.get(i + 1)!.title;
      assert.ok(text.indexOf('Read online') < text.indexOf(`\n${title}\n`), 'a "Read online" link above the title');
      assert.equal(Boolean(href(mail, /Previous/)), i > 0, 'a link to the previous installment after the first');
      assert.equal(/The End/.test(text), i === total - 1, `"The End" on the last one only (#${i + 1})`);
    }
    const whole = href(mails.at(-1)!, /whole story/i)!;
    const page = await env.client.get(whole);
    assert.equal(page.res.status, 200);
    for (const inst of app.store.installments.all()) assert.ok(page.body.includes(`id="part-${inst.number}"`));

    const home = await env.client.get('/');
    assert.match(home.body, /href="[^"]*\/story"/, 'the home page offers the whole story');
    assert.match(home.body, /href="[^"]*\/story\.epub"/, 'and the EPUB');
    assert.equal((await env.client.get('/story.epub')).res.headers.get('content-type'), 'application/epub+zip');
    const lastPage = await env.client.get(`/installments/${total}`);
    assert.match(lastPage.body, /The End/);
  });

  it('a reader who subscribes once the story is complete is told so, not promised installments', async () => {
    const res = await env.client.subscribe('late@example.org', {});
    assert.equal(res.res.status, 303);
    const inbox = await env.client.get('/subscribe/check-inbox');
    assert.doesNotMatch(inbox.body, /start receiving installments/);
    await env.sink.waitFor((r) => r.some((m) => m.to.includes('late@example.org')));
    const confirmMail = await env.sink.parse(env.sink.to('late@example.org')[0]!);
    const confirmUrl = new URL(href(confirmMail, /Confirm/)!);
    const done = await env.client.post('/confirm', { token: confirmUrl.searchParams.get('token')! });
    assert.equal(done.res.status, 200);
    assert.match(done.body, /complete/);
    assert.doesNotMatch(done.body, /New installments will arrive/);
    await env.sink.waitFor((r) => r.filter((m) => m.to.includes('late@example.org')).length >= 2);
    const welcome = await env.sink.parse(env.sink.to('late@example.org')[1]!);
    assert.match(String(welcome.text), /complete/);
    assert.doesNotMatch(String(welcome.text), /regular schedule/);
    assert.ok(href(welcome, /EPUB/), 'the welcome email offers the EPUB');
  });
});

describe('what readers decide on, shown with the author\u2019s own words for it', () => {
  let env: Env;
  before(async () => {
    env = await serve('broadcast');
    env.serving.runtime.app.store.installments.markPublished(1);
  });
  after(() => env.close());

  it('home page (rating and warnings before the form), first installment, feeds and installments --json', async () => {
    const home = (await env.client.get('/')).body;
    const form = home.indexOf('<form class="subscribe"');
    for (const shown of [
      'Rating',
      'Warnings',
      'Pairing',
      'Mara/Ines',
      'Timeline/ Spoilers',
      'after the flood',
      'A short story, complete.',
    ]) {
      const at = home.indexOf(shown);
      assert.ok(at >= 0 && at < form, `${shown} before the subscribe form`);
    }
    assert.ok(
      home.indexOf('Rating') < home.indexOf('Pairing') && home.indexOf('Warnings') < home.indexOf('Pairing'),
      'rating and warnings first',
    );
    assert.ok(home.includes('Grief &lt;b&gt;loud&lt;/b&gt;') && !home.includes('<b>loud</b>'), 'escaped');
    const first = (await env.client.get('/installments/1')).body;
    assert.ok(first.includes('Mara/Ines') && first.includes('A short story, complete.'));

    const json = parseFeed(
      Buffer.from(await (await fetch(new URL('/feed.json', env.serving.url))).arrayBuffer()),
      'json',
    );
    assert.deepEqual(json.entries[0]!.tags, [
      'Drama',
      'Rating: T',
      'Warnings: Grief <b>loud</b>',
      'Pairing: Mara/Ines',
      'Timeline/ Spoilers: after the flood',
    ]);
    const rss = parseFeed(Buffer.from(await (await fetch(new URL('/feed.xml', env.serving.url))).arrayBuffer()), 'rss');
    assert.equal(rss.bozo, 0, rss.problems.join('; '));
    assert.ok(rss.entries[0]!.tags.includes('Pairing: Mara/Ines'));

    const cli = await runCli(['installments', '--json', '--config', env.project.configPath]);
    assert.equal(cli.code, 0, cli.stderr);
    const story = (
      JSON.parse(cli.stdout) as { story: { details: Array<{ key: string; value: string }>; notes: string[] } }
    ).story;
    assert.deepEqual(story.details[2], { key: 'Pairing', value: 'Mara/Ines' });
    assert.deepEqual(story.notes, ['A short story, complete.']);
  });
});

describe('send twice in broadcast', () => {
  it('a second run within the minimum interval is refused with the time of the last run, unless --force; the schedule is never refused', async () => {
    const project = makeProject({ story: STORY, settings: { split: { targetWords: 300 } } });
    try {
      const cfg = ['--config', project.configPath];
      const one = await runCli(['send', ...cfg]);
      assert.equal(one.code, 0, one.stderr);
      const two = await runCli(['send', ...cfg]);
      assert.equal(two.code, 1, two.stdout + two.stderr);
      assert.equal(two.stderr.trim().split('\n').length, 1, two.stderr);
      assert.match(two.stderr, /last run .*\d{4}-\d\d-\d\d.*--force/);
      const store = Store.open(project.config().paths.db);
      try {
        assert.equal(store.installments.count().published, 1, 'nothing changed');
      } finally {
        store.close();
      }
      const forced = await runCli(['send', '--force', ...cfg]);
      assert.equal(forced.code, 0, forced.stderr);

      const app = project.open();
      try {
        const { createRuntime } = await import('../../src/runtime.ts');
        const runtime = createRuntime(app, silent);
        assert.ok(app.store.installments.count().total >= 4);
        await assert.rejects(sendRun(runtime.send, {}), /last run \(run 2\)/, 'the forced run counts as the last');
        assert.equal(
          (await sendRun(runtime.send, { kind: 'scheduled' })).status,
          'finished',
          'the schedule itself is never refused',
        );
        assert.equal(
          (await sendRun(runtime.send, { kind: 'catch-up' })).status,
          'finished',
          'nor its one catch-up of a missed time',
        );
        runtime.close();
      } catch (err) {
        app.store.close();
        throw err;
      }
    } finally {
      project.cleanup();
    }
  });
});
