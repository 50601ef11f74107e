// The subscriber side end to end: the real server on a free port, a real SMTP server on
// 127.0.0.1 receiving the confirmation and welcome mail, read back with mailparser, and the
// SQLite store the server writes to.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ParsedMail } from 'mailparser';
import { createTransport, HeaderInjectionError } from '../../src/deliver/transport.ts';
import type { Subscriber } from '../../src/store/subscribers.ts';
import { startSite, type Site } from '../helpers/feeds-site.ts';
import { Client } from '../helpers/form-client.ts';
import { makeProject, type Project } from '../helpers/project.ts';
import { headerValue, SmtpSink } from '../helpers/smtp-sink.ts';

const HOSTILE_TITLE = `<script>alert("title")</script> Tales & "Co"`;

const CONFIRM_LINK = /https?:\/\/[^\s\]]+\/confirm\?token=[A-Za-z0-9_-]+/;

describe('subscribe, confirm, unsubscribe over HTTP with real mail', () => {
  const sink = new SmtpSink();
  let project: Project;
  let site: Site;
  let client: Client;

  const sub = (email: string): Subscriber | undefined => site.app.store.subscribers.byEmail(email);
  /** Every message handed over so far has reached the sink once this resolves. */
  const settled = () => site.serving.runtime.subscriptions.settled();
  const mailsTo = (address: string): Promise<ParsedMail[]> => Promise.all(sink.to(address).map((r) => sink.parse(r)));

  async function nextMail(address: string, count: number): Promise<ParsedMail> {
    await sink.waitFor(() => sink.to(address).length >= count);
    const mails = await mailsTo(address);
    assert.equal(mails.length, count, `exactly ${count} message(s) to ${address}`);
    return mails[count - 1]!;
  }

  function confirmLinkIn(mail: ParsedMail): string {
    assert.ok(mail.text, 'the email has a text part');
    const m = CONFIRM_LINK.exec(mail.text);
    assert.ok(m, `the text part holds the confirmation link:\n${mail.text}`);
    return m[0];
  }

  const unsubscribeLinkIn = (mail: ParsedMail): string => {
    const header = headerValue(mail, 'list-unsubscribe') ?? '';
    const m = /<(https?:[^>]+)>/.exec(header);
    assert.ok(m, `List-Unsubscribe holds an http(s) link: ${header}`);
    return m[1]!;
  };

  /** Subscribes and confirms `email`; returns the welcome mail. */
  async function subscribeAndConfirm(email: string): Promise<ParsedMail> {
    const before = sink.to(email).length;
    assert.equal((await client.subscribe(email)).res.status, 303);
    const link = confirmLinkIn(await nextMail(email, before + 1));
    const confirmed = await client.post(link, {});
    assert.equal(confirmed.res.status, 200, confirmed.body);
    return nextMail(email, before + 2);
  }

  before(async () => {
    await sink.start();
    project = makeProject({
      settings: {
        story: { file: 'story.txt', title: HOSTILE_TITLE, rating: 'NC-17' },
        mail: { smtpUrl: sink.url, from: 'Serial <serial@example.org>' },
        subscribe: { rateLimitMax: 1000 },
      },
    });
    site = await startSite(project);
    client = new Client(site);
    assert.equal(site.serving.runtime.transport.kind, 'smtp');
  });

  after(async () => {
    await site?.stop();
    await sink.stop();
    project?.cleanup();
  });

  it('double opt-in: subscribe → confirmation mail → GET shows a button and changes nothing → POST confirms → welcome mail', async () => {
    const email = 'reader@example.org';
    const { res } = await client.subscribe(email);
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/subscribe/check-inbox');
    const inbox = await client.get('/subscribe/check-inbox');
    assert.match(inbox.body, /Check your inbox/);

    const pending = sub(email);
    assert.equal(pending?.status, 'pending');
    assert.equal(pending.consentIp, '127.0.0.1');
    assert.ok(
      pending.consentAt && Math.abs(Date.now() - Date.parse(pending.consentAt)) < 60_000,
      'consent time stored',
    );

    const confirmMail = await nextMail(email, 1);
    assert.match(confirmMail.subject ?? '', /^Confirm your subscription to /);
    assert.ok(confirmMail.html, 'the confirmation has an HTML part');
    const link = confirmLinkIn(confirmMail);
    assert.ok(confirmMail.html.includes(link.replace(/&/g, '&amp;')), 'the HTML part holds the same link');
    assert.match(confirmMail.text!, /expires in 48 hours/);

    // A mail scanner fetching the link (twice) must not confirm anyone.
    for (let i = 0; i < 2; i++) {
      const page = await client.get(link);
      assert.equal(page.res.status, 200);
      assert.match(page.body, /<form method="post" action="\/confirm">/);
      assert.match(page.body, /<button type="submit">Confirm my subscription<\/button>/);
      assert.equal(sub(email)?.status, 'pending');
    }

    const token = new URL(link).searchParams.get('token')!;
    const confirmed = await client.post('/confirm', { token });
    assert.equal(confirmed.res.status, 200);
    assert.match(confirmed.body, /You(&#39;|')re subscribed/);
    const active = sub(email)!;
    assert.equal(active.status, 'active');
    assert.equal(active.confirmIp, '127.0.0.1');
    assert.ok(
      active.confirmedAt && Math.abs(Date.now() - Date.parse(active.confirmedAt)) < 60_000,
      'confirmation time stored',
    );
    assert.equal(active.consentAt, pending.consentAt, 'the consent record is kept');

    const welcome = await nextMail(email, 2);
    assert.match(welcome.subject ?? '', /^Welcome to /);
    assert.ok(welcome.text && welcome.text.includes('You are subscribed to'), 'the welcome has a text part');
    assert.equal(headerValue(welcome, 'list-unsubscribe-post'), 'List-Unsubscribe=One-Click');

    // The token is single-use.
    const again = await client.post('/confirm', { token });
    assert.equal(again.res.status, 410);
    assert.match(again.body, /already been used/);
    assert.equal(sub(email)?.status, 'active');
  });

  it('one-click unsubscribe (RFC 8058): POST with List-Unsubscribe=One-Click, no cookie, no form token; GET changes nothing', async () => {
    const email = 'oneclick@example.org';
    const welcome = await subscribeAndConfirm(email);
    const link = unsubscribeLinkIn(welcome);
    assert.ok(welcome.text?.includes(link), 'the text part carries the same unsubscribe link');

    const page = await client.get(link);
    assert.equal(page.res.status, 200);
    assert.match(page.body, /<button type="submit">Unsubscribe<\/button>/);
    assert.equal(sub(email)?.status, 'active', 'GET on the unsubscribe link changes nothing');

    const anonymous = new Client(site);
    const done = await anonymous.post(link, 'List-Unsubscribe=One-Click', { cookies: false });
    assert.equal(done.res.status, 200, done.body);
    assert.match(done.body, /You are unsubscribed/);
    const gone = sub(email)!;
    assert.equal(gone.status, 'unsubscribed');
    assert.ok(gone.unsubscribedAt);

    // Once more (a client retrying) is harmless; GET now says so.
    assert.equal((await anonymous.post(link, 'List-Unsubscribe=One-Click', { cookies: false })).res.status, 200);
    assert.match((await client.get(link)).body, /You are unsubscribed/);
  });

  it('one-click also works as multipart/form-data, as some mail clients send it', async () => {
    const email = 'multipart@example.org';
    const link = unsubscribeLinkIn(await subscribeAndConfirm(email));
    const boundary = 'xYzBoundary';
    const body = `--${boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--${boundary}--\r\n`;
    const done = await new Client(site).post(link, body, {
      contentType: `multipart/form-data; boundary=${boundary}`,
      cookies: false,
    });
    assert.equal(done.res.status, 200, done.body);
    assert.equal(sub(email)?.status, 'unsubscribed');
  });

  it('re-subscribing after unsubscribing works, straight away, with fresh consent', async () => {
    const email = 'comeback@example.org';
    const link = unsubscribeLinkIn(await subscribeAndConfirm(email));
    assert.equal((await client.post(link, { token: new URL(link).searchParams.get('token')! })).res.status, 200);
    assert.equal(sub(email)?.status, 'unsubscribed');
    const mailed = sink.to(email).length;

    const welcome = await subscribeAndConfirm(email);
    assert.match(welcome.subject ?? '', /^Welcome/);
    assert.equal(sink.to(email).length, mailed + 2, 'a new confirmation and a new welcome');
    const back = sub(email)!;
    assert.equal(back.status, 'active');
    assert.equal(back.unsubscribedAt, null);
  });

  it('expired confirmation tokens are refused with a clear page, and nothing changes', async () => {
    const email = 'late@example.org';
    await client.subscribe(email);
    const link = confirmLinkIn(await nextMail(email, 1));
    // As if its 48 hours had passed.
    site.app.store.db
      .prepare('UPDATE tokens SET expires_at = ? WHERE subscriber_id = ?')
      .run(new Date().toISOString(), sub(email)!.id);

    const page = await client.get(link);
    assert.equal(page.res.status, 410);
    assert.match(page.body, /This confirmation link has expired\. Subscribe again/);
    assert.doesNotMatch(page.body, /<form method="post" action="\/confirm">/);
    const post = await client.post('/confirm', { token: new URL(link).searchParams.get('token')! });
    assert.equal(post.res.status, 410);
    assert.match(post.body, /expired/);
    assert.equal(sub(email)?.status, 'pending');
  });

  it('tampered confirmation tokens and unsubscribe signatures are refused with a clear page', async () => {
    const email = 'tamper@example.org';
    const welcome = await subscribeAndConfirm(email);
    const victim = sub(email)!;

    const confirmToken = 'A'.repeat(32);
    for (const bad of [confirmToken, '', 'x'.repeat(500), '../../etc/passwd']) {
      for (const r of [
        await client.get(`/confirm?token=${encodeURIComponent(bad)}`),
        await client.post('/confirm', { token: bad }),
      ]) {
        assert.equal(r.res.status, 400);
        assert.match(r.body, /This confirmation link is not valid\. Check that you copied the whole link/);
      }
    }
    // Two values for one field is not a token either.
    assert.equal((await client.get('/confirm?token=a&token=b')).res.status, 400);

    const token = new URL(unsubscribeLinkIn(welcome)).searchParams.get('token')!;
    const [id, mac] = token.split('.') as [string, string];
    const flipped = mac.slice(0, -2) + (mac.at(-2) === 'A' ? 'B' : 'A') + mac.at(-1);
    const otherId = (victim.id + 1).toString(36);
    for (const bad of [`${id}.${flipped}`, `${otherId}.${mac}`, `${id}.${mac}x`, id, `${id}.`]) {
      const page = await client.get(`/unsubscribe?token=${encodeURIComponent(bad)}`);
      assert.equal(page.res.status, 400, bad);
      assert.match(page.body, /This unsubscribe link is not valid/);
      const post = await new Client(site).post(
        `/unsubscribe?token=${encodeURIComponent(bad)}`,
        'List-Unsubscribe=One-Click',
        { cookies: false },
      );
      assert.equal(post.res.status, 400);
    }
    assert.equal(sub(email)?.status, 'active');
  });

  it('answers the same for new, pending, active and unsubscribed addresses, and does not re-mail within the interval', async () => {
    const active = 'known-active@example.org';
    await subscribeAndConfirm(active);
    const unsubscribed = 'known-gone@example.org';
    const link = unsubscribeLinkIn(await subscribeAndConfirm(unsubscribed));
    await new Client(site).post(link, 'List-Unsubscribe=One-Click', { cookies: false });
    const pending = 'known-pending@example.org';
    await client.subscribe(pending);
    await nextMail(pending, 1);
    await settled();
    const before = new Map([active, unsubscribed, pending].map((a) => [a, sink.to(a).length]));

    const answers = [];
    for (const email of ['brand-new@example.org', pending, active, unsubscribed, active.toUpperCase()]) {
      const { res, body } = await client.subscribe(email);
      answers.push({
        status: res.status,
        location: res.headers.get('location'),
        type: res.headers.get('content-type'),
        body,
      });
    }
    for (const a of answers) assert.deepEqual(a, answers[0]);
    await settled();

    assert.equal(
      sink.to(active).length,
      before.get(active),
      'an active address is not mailed again within the interval',
    );
    assert.equal(
      sink.to(pending).length,
      before.get(pending),
      'a pending address is not sent another confirmation within minutes',
    );
    assert.equal(
      sink.to(unsubscribed).length,
      before.get(unsubscribed)! + 1,
      'an unsubscribed address asked anew gets one confirmation',
    );
    assert.equal(sub(active)?.status, 'active');

    // Once the interval has passed, the active address hears once ("you are already subscribed"), then not again.
    site.app.store.subscribers.noteNoticeSent(sub(active)!.id, new Date(Date.now() - 25 * 3_600_000).toISOString());
    for (let i = 0; i < 3; i++) assert.equal((await client.subscribe(active)).res.status, 303);
    await settled();
    const mails = await mailsTo(active);
    assert.equal(mails.length, before.get(active)! + 1);
    assert.match(mails.at(-1)!.subject ?? '', /^Welcome/);
  });

  it('POST /subscribe without the CSRF token or cookie is refused with 403', async () => {
    const email = 'nocsrf@example.org';
    const fresh = new Client(site);
    const noCookie = await fresh.post('/subscribe', { email, adult: 'yes' }, { cookies: false });
    assert.equal(noCookie.res.status, 403);
    assert.match(noCookie.body, /reload the page and try again/);

    await fresh.csrfToken();
    const noToken = await fresh.post('/subscribe', { email, adult: 'yes' });
    assert.equal(noToken.res.status, 403);
    const wrongToken = await fresh.post('/subscribe', { email, adult: 'yes', _csrf: 'forged' });
    assert.equal(wrongToken.res.status, 403);
    // A token from another visitor's page does not match this visitor's cookie.
    const stolen = await new Client(site).csrfToken();
    const crossed = await new Client(site).post(
      '/subscribe',
      { email, adult: 'yes', _csrf: stolen },
      { cookies: false },
    );
    assert.equal(crossed.res.status, 403);
    await settled();
    assert.equal(sub(email), undefined);
    assert.equal(sink.to(email).length, 0);
  });

  it('a filled honeypot gets the usual answer and stores nothing', async () => {
    const email = 'bot@example.org';
    const { res } = await client.subscribe(email, { adult: 'yes', website: 'http://spam.example' });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/subscribe/check-inbox');
    await settled();
    assert.equal(sub(email), undefined);
    assert.equal(sink.to(email).length, 0);
  });

  it('an oversize body is refused with 413', async () => {
    const _csrf = await client.csrfToken();
    const r = await client.post('/subscribe', {
      email: 'big@example.org',
      adult: 'yes',
      _csrf,
      website: 'x'.repeat(20_000),
    });
    assert.equal(r.res.status, 413);
    assert.match(r.body, /The request was too large/);
    assert.equal(sub('big@example.org'), undefined);
  });

  it('refuses invalid addresses with a clear message and accepts IDN domains', async () => {
    const cases: Array<[string, RegExp]> = [
      ['reader@example.org\r\nBcc: victim@example.net', /contains a line break/],
      ['reader@example.org\nBcc: victim@example.net', /contains a line break/],
      ['A <a@example.org>', /without a name or spaces/],
      ['"Reader" a@example.org', /without a name or spaces/],
      [`${'a'.repeat(65)}@example.org`, /too long/],
      [`a@${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.${'e'.repeat(60)}.${'f'.repeat(10)}.org`, /too long/],
      ['no-at-sign.example.org', /is not an email address/],
      ['two@@example.org', /not a valid email address/],
      ['dot..dot@example.org', /not a valid email address/],
      ['reader@localhost', /not a valid email address/],
      ['', /an email address is required/],
    ];
    for (const [email, message] of cases) {
      const { res, body } = await client.subscribe(email);
      assert.equal(res.status, 400, JSON.stringify(email));
      assert.match(body, /Please check your email address/);
      assert.match(body, message, JSON.stringify(email));
      assert.match(body, /aria-invalid="true"/);
    }
    await settled();
    assert.equal(sink.to('victim@example.net').length, 0);
    for (const [email] of cases) assert.equal(sub(email.trim()), undefined);

    const idn = 'leser@bücher.example';
    assert.equal((await client.subscribe(idn)).res.status, 303);
    assert.equal(sub(idn)?.status, 'pending');
    // smtp-server reports the envelope domain in Unicode; the To header travels as punycode.
    const mail = await nextMail(idn, 1);
    assert.equal(headerValue(mail, 'to'), 'leser@xn--bcher-kva.example');
  });

  it('look-alike spellings of one address (fullwidth, invisible characters, punycode) are one subscriber, mailed once', async () => {
    const variants = [
      'lookalike@example.org',
      'lookalike@\uff45xample.org', // fullwidth e
      'lookalike\u200b@example.org', // zero-width space
      'look\u00adalike@example.org', // soft hyphen
      'look\u200dalike@exam\u200cple.org', // zero-width joiner and non-joiner
      'lookalike\u2060@example.org\ufeff', // word joiner, byte-order mark
      '\uff4cookalike@EXAMPLE.ORG', // fullwidth l, upper-case domain
    ];
    for (const email of variants) assert.equal((await client.subscribe(email)).res.status, 303, JSON.stringify(email));
    await nextMail('lookalike@example.org', 1);
    await settled();
    const rows = [...site.app.store.subscribers.iterate()].filter((s) => /ookalike/.test(s.email));
    assert.deepEqual(
      rows.map((s) => s.email),
      ['lookalike@example.org'],
    );
    assert.equal(sink.to('lookalike@example.org').length, 1, 'one confirmation, not one per spelling');

    const idn = [
      'leserin@b\u00fccher.example',
      'leserin@xn--bcher-kva.example',
      'leserin@B\u00dcCHER.example',
      'leserin@bu\u0308cher.example',
    ];
    for (const email of idn) assert.equal((await client.subscribe(email)).res.status, 303, JSON.stringify(email));
    await settled();
    assert.deepEqual(
      [...site.app.store.subscribers.iterate()].filter((s) => s.email.startsWith('leserin@')).map((s) => s.email),
      ['leserin@b\u00fccher.example'],
      'an IDN domain is kept in its one Unicode form',
    );
  });

  it('renders script in titles and addresses inert, and header-injection attempts never reach a header', async () => {
    const home = await client.get('/');
    assert.doesNotMatch(home.body, /<script/i);
    assert.ok(
      home.body.includes('&lt;script&gt;alert(&quot;title&quot;)&lt;/script&gt; Tales &amp; &quot;Co&quot;'),
      'the title is shown, escaped',
    );

    const hostile = '<script>alert(1)</script>@example.org';
    const refused = await client.subscribe(hostile);
    assert.equal(refused.res.status, 400);
    assert.doesNotMatch(refused.body, /<script/i);
    assert.match(refused.body, /value="&lt;script&gt;alert\(1\)&lt;\/script&gt;@example\.org"/);

    // Valid, but full of characters that mean something in HTML.
    const odd = "o'brien&co+{x}@example.org";
    await client.subscribe(odd);
    const mail = await nextMail(odd, 1);
    const page = await client.get(confirmLinkIn(mail));
    assert.equal(page.res.status, 200);
    assert.ok(page.body.includes('o&#39;brien&amp;co+{x}@example.org'), 'the address is escaped on the confirm page');
    assert.doesNotMatch(page.body, /<script/i);
    assert.equal(mail.subject, `Confirm your subscription to ${HOSTILE_TITLE}`);

    const missing = await client.get('/"><script>alert(1)</script>');
    assert.equal(missing.res.status, 404);
    assert.match(missing.body, /Page not found/);
    assert.doesNotMatch(missing.body, /<script/i);

    // Every mail received so far: no header the subscribe form could have added.
    for (const r of sink.received) {
      const parsed = await sink.parse(r);
      assert.equal(parsed.headers.has('bcc'), false);
      assert.equal(r.to.length, 1);
    }
  });

  it('the transport refuses a CR/LF in any header value before anything is sent', async () => {
    const transport = createTransport(site.app.config);
    const count = sink.received.length;
    try {
      const mail = { to: 'x@example.org', subject: 'Hi', html: '<p>x</p>', text: 'x', messageId: '<m1@example.org>' };
      await assert.rejects(transport.send({ ...mail, subject: 'Hi\r\nBcc: victim@example.net' }), HeaderInjectionError);
      await assert.rejects(
        transport.send({ ...mail, to: 'x@example.org\nBcc: victim@example.net' }),
        HeaderInjectionError,
      );
      await assert.rejects(
        transport.send({ ...mail, headers: { 'List-Id': 'a\r\nBcc: victim@example.net' } }),
        HeaderInjectionError,
      );
    } finally {
      transport.close();
    }
    assert.equal(sink.received.length, count);
  });

  it('an adult-rated story shows its rating, asks for adult confirmation and refuses without it', async () => {
    const home = await client.get('/');
    assert.match(home.body, /Rated NC-17/);
    assert.match(home.body, /<input type="checkbox" name="adult" value="yes" required> I confirm I am an adult/);

    const email = 'minor@example.org';
    for (const extra of [{}, { adult: 'no' }] as Array<Record<string, string>>) {
      const r = await client.subscribe(email, extra);
      assert.equal(r.res.status, 400);
      assert.match(r.body, /This story is rated NC-17: please confirm you are an adult to subscribe/);
      assert.ok(r.body.includes(`value="${email}"`), 'the address typed is kept in the form');
    }
    await settled();
    assert.equal(sub(email), undefined);
    assert.equal(sink.to(email).length, 0);
  });
});

/**
 * A site with a rate limit of 3 subscribe attempts, trusting X-Forwarded-For from `proxy`
 * only; `site()` is the running site once the suite's `before` has run.
 */
function siteBehind(proxy: string): () => Site {
  const sink = new SmtpSink();
  let project: Project | undefined;
  let site: Site | undefined;
  before(async () => {
    await sink.start();
    project = makeProject({
      settings: {
        mail: { smtpUrl: sink.url },
        server: { trustProxy: proxy },
        subscribe: { rateLimitMax: 3, rateLimitWindowSeconds: 600 },
      },
    });
    site = await startSite(project);
  });
  after(async () => {
    await site?.stop();
    await sink.stop();
    project?.cleanup();
  });
  return () => site!;
}

describe('per-IP rate limit on POST /subscribe, behind the named proxy 127.0.0.1', () => {
  const running = siteBehind('127.0.0.1');

  it('answers 429 with Retry-After once an address has used its attempts; other addresses are not affected', async () => {
    const site = running();
    const crowd = new Client(site, { 'x-forwarded-for': '203.0.113.7' });
    for (let i = 0; i < 3; i++) assert.equal((await crowd.subscribe(`r${i}@example.org`, {})).res.status, 303);
    const limited = await crowd.subscribe('r3@example.org', {});
    assert.equal(limited.res.status, 429);
    const retryAfter = Number(limited.res.headers.get('retry-after'));
    assert.ok(retryAfter > 0 && retryAfter <= 600, `Retry-After: ${limited.res.headers.get('retry-after')}`);
    assert.match(limited.body, /Too many subscription attempts from your address\. Please try again in/);
    assert.equal(site.app.store.subscribers.byEmail('r3@example.org'), undefined);
    assert.equal(
      site.app.store.subscribers.byEmail('r0@example.org')?.consentIp,
      '203.0.113.7',
      'the forwarded client is the consent record',
    );

    // The home page is not limited, and another client address still gets through.
    assert.equal((await crowd.get('/')).res.status, 200);
    const other = new Client(site, { 'x-forwarded-for': '198.51.100.9' });
    assert.equal((await other.subscribe('other@example.org', {})).res.status, 303);
    assert.equal(site.app.store.subscribers.byEmail('other@example.org')?.consentIp, '198.51.100.9');
  });
});

describe('X-Forwarded-For from a client that is not the named proxy', () => {
  // The proxy is elsewhere: this test's requests come straight from 127.0.0.1.
  const running = siteBehind('10.9.9.9');

  it('is ignored: a forged address neither escapes the rate limit nor becomes the consent record', async () => {
    const site = running();
    const forged = ['203.0.113.1', '203.0.113.2, 10.9.9.9', '198.51.100.3', '10.9.9.9'];
    for (let i = 0; i < 3; i++) {
      const r = await new Client(site, { 'x-forwarded-for': forged[i]! }).subscribe(`forged${i}@example.org`, {});
      assert.equal(r.res.status, 303);
      assert.equal(
        site.app.store.subscribers.byEmail(`forged${i}@example.org`)?.consentIp,
        '127.0.0.1',
        `stored the real client, not ${forged[i]}`,
      );
    }
    const limited = await new Client(site, { 'x-forwarded-for': forged[3]! }).subscribe('forged3@example.org', {});
    assert.equal(limited.res.status, 429, 'a fourth attempt from the same real address is limited, whatever it claims');
    assert.equal(site.app.store.subscribers.byEmail('forged3@example.org'), undefined);
  });
});
