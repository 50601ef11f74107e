// Confirmation, welcome and "The End" composed once per kind and filled per reader: the
// bytes the notices sender hands the transport as `raw` must be exactly what nodemailer
// builds for that reader on its own (same date and boundary), for every kind, with long
// links and international addresses.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type { AddressedTemplate } from '../../src/deliver/compose.ts';
import { NoticeMail } from '../../src/deliver/notice-mail.ts';
import { NoticeSender } from '../../src/deliver/notices.ts';
import { mailOptions, type MailTransport, type OutgoingMail } from '../../src/deliver/transport.ts';
import type { PreparedEmail } from '../../src/render/email.ts';
import type { Runtime } from '../../src/runtime.ts';
import type { NoticeKind } from '../../src/store/notices.ts';
import type { Subscriber } from '../../src/store/subscribers.ts';
import { composeSites, HARD_READERS, silent } from '../helpers/compose-site.ts';

const LONG_BASE =
  'https://serial.example.org/a/rather/long/path/so/that/every/link/wraps/across/quoted-printable/lines';

const newSite = composeSites();
const site = (settings: Record<string, unknown>): Runtime =>
  newSite({ baseUrl: 'https://serial.example.org', ...settings }, { mail: { feedbackId: true } });

const READERS = [
  ...HARD_READERS,
  ...Array.from({ length: 40 }, (_, i) => `reader${'x'.repeat(i * 2)}${i}@example${i % 7}.org`),
];

interface Sent {
  to: string;
  raw?: Buffer;
  mail?: OutgoingMail;
}

/** A notices sender like the runtime's, with a transport that keeps what it is handed. */
function sender(runtime: Runtime, raw: boolean) {
  const sent: Sent[] = [];
  const transport: Pick<MailTransport, 'send' | 'sendRaw'> = {
    send: (mail) => {
      sent.push({ to: mail.to, mail });
      return Promise.resolve({ messageId: mail.messageId, response: '250 ok' });
    },
    sendRaw: raw
      ? (to, bytes, messageId) => {
          sent.push({ to, raw: bytes });
          return Promise.resolve({ messageId, response: '250 ok' });
        }
      : undefined,
  };
  const noticeMail = runtime.noticeDeps.noticeMail!;
  // Every template handed out, per kind: one each is the point.
  const templates = new Map<NoticeKind, Set<AddressedTemplate | undefined>>();
  const counting: Pick<NoticeMail, 'template'> = {
    async template(prepared: PreparedEmail, kind: NoticeKind) {
      const t = await noticeMail.template(prepared, kind);
      templates.set(kind, (templates.get(kind) ?? new Set()).add(t));
      return t;
    },
  };
  const notices = new NoticeSender({ ...runtime.noticeDeps, transport, noticeMail: counting, log: silent });
  return { notices, sent, templates };
}

/** What nodemailer builds on its own for this notice, with the date and boundary the raw message has. */
async function nodemailerAlone(runtime: Runtime, sub: Subscriber, kind: NoticeKind, raw: string): Promise<string> {
  const { app, links, renderer } = runtime;
  const n = app.store.notices.latestFor(sub.id)!;
  assert.equal(n.kind, kind);
  const prepared = await (kind === 'confirm'
    ? renderer.confirm()
    : kind === 'welcome'
      ? renderer.welcome()
      : renderer.theEnd());
  const values: Record<string, string> = {
    ...links.forReader(sub, ['unsubscribeUrl', ...prepared.placeholders]),
    confirmUrl: confirmUrl(sub),
  };
  const mail = runtime.send.lists.address(prepared.fill(values), sub.email, values.unsubscribeUrl!, n.messageId, kind);
  const date = new Date(/^Date: (.+)$/m.exec(raw)![1]!);
  const boundary = /boundary="--_NmP-([0-9a-f]+)-Part_1"/.exec(raw)![1]!;
  const built: Buffer = await new MailComposer({ ...mailOptions(app.config, mail), date, baseBoundary: boundary })
    .compile()
    .build();
  return built.toString('latin1');
}

/** Each reader's confirmation link: long, and different from one reader to the next. */
const confirmUrls = new Map<number, string>();
const confirmUrl = (sub: Subscriber): string => confirmUrls.get(sub.id) ?? '';

/** Queues `kind` for each reader, sends them all, and checks every one against nodemailer alone. */
async function check(
  runtime: Runtime,
  kind: NoticeKind,
  readers: string[],
  { notices, sent, templates } = sender(runtime, true),
): Promise<void> {
  const { app, links } = runtime;
  sent.length = 0;
  const subs = readers.map((email) =>
    app.store.subscribers.create({ email, status: kind === 'confirm' ? 'pending' : 'active' }),
  );
  for (const sub of subs) {
    if (kind === 'confirm') {
      const url = links.confirm(randomBytes(12 + (sub.id % 30)).toString('base64url'));
      confirmUrls.set(sub.id, url);
      notices.confirm(sub, url);
    } else if (kind === 'welcome') notices.welcome(sub);
    else notices.theEnd(sub);
  }
  await notices.drain();
  assert.equal(sent.length, subs.length, 'every notice sent');
  assert.ok(
    sent.every((s) => s.raw),
    'all as built messages',
  );
  for (const sub of subs) {
    const ours = sent.find((s) => s.to === sub.email)!.raw!.toString('latin1');
    assert.equal(ours, await nodemailerAlone(runtime, sub, kind, ours), `${kind}: byte for byte for ${sub.email}`);
  }
  assert.ok(![...templates.get(kind)!].includes(undefined), `${kind}: not composed per reader`);
}

describe('notices composed once, filled per reader', () => {
  for (const kind of ['confirm', 'welcome', 'the-end'] as const) {
    it(`${kind}: byte for byte what nodemailer builds, broadcast, from one template`, async () => {
      const runtime = site({});
      const s = sender(runtime, true);
      await check(runtime, kind, READERS, s);
      assert.equal(s.templates.get(kind)?.size, 1);
    });

    it(`${kind}: with links long enough to wrap differently from one reader to the next`, async () => {
      await check(site({ baseUrl: LONG_BASE }), kind, READERS);
    });

    it(`${kind}: paced, with the reader's own read token`, async () => {
      await check(site({ mode: 'paced', baseUrl: LONG_BASE }), kind, READERS);
    });
  }

  it('a welcome once the story is complete says so, from a template of its own', async () => {
    const runtime = site({});
    const s = sender(runtime, true);
    await check(runtime, 'welcome', READERS.slice(0, 5), s);
    const { app } = runtime;
    for (const inst of app.store.installments.all()) app.store.installments.markPublished(inst.number);
    await check(runtime, 'welcome', READERS.slice(5, 15), s);
    const [before, complete] = [...s.templates.get('welcome')!] as AddressedTemplate[];
    assert.ok(before!.slots.has('preferencesUrl'), 'a story still running: the reader may choose when');
    assert.ok(complete && !complete.slots.has('preferencesUrl'), 'a complete story: a template of its own');
    assert.match(s.sent.at(-1)!.raw!.toString('latin1'), /is complete/);
  });

  it('a transport that cannot take built messages gets each notice composed by nodemailer', async () => {
    const runtime = site({});
    const { notices, sent, templates } = sender(runtime, false);
    const sub = runtime.app.store.subscribers.create({ email: 'leser@bücher.example', status: 'active' });
    notices.theEnd(sub);
    await notices.drain();
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.mail?.to, 'leser@bücher.example');
    assert.equal(templates.size, 0, 'no template composed');
  });
});
