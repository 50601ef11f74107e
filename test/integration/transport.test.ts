// The SMTP transport's built-message path (sendRaw) against a real smtp-server on
// 127.0.0.1: what the server receives is what nodemailer's own `sendMail({raw})` delivers,
// byte for byte, signed or not, with international domains in punycode; DKIM signatures verify; refusals carry the server's reply, and the rate
// limit paces every message.
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { verifyDkim } from '../../src/deliver/dkim.ts';
import { createTransport } from '../../src/deliver/transport.ts';
import { makeKey } from '../helpers/dkim-keys.ts';
import { makeProject, type Project } from '../helpers/project.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';

const FROM = 'The Ledger <serial@example.org>';

/** Messages whose ends and line starts give SMTP's data framing work: dots, bare CR/LF, no final newline. */
const MESSAGES: Record<string, string> = {
  'ends in CRLF': 'Subject: one\r\n\r\nHello.\r\n',
  'no final newline': 'Subject: two\r\n\r\nHello, no newline',
  'ends in a bare CR': 'Subject: three\r\n\r\nHello\r',
  'lines that start with dots': 'Subject: four\r\n\r\n.\r\n..two\r\n.three\r\nend\r\n',
  'bare LF and CR inside': 'Subject: five\r\n\r\nA\nB\rC\r\n.\nD\r\n',
};

describe('sendRaw over a real SMTP pool', () => {
  const sink = new SmtpSink();
  const projects: Project[] = [];

  before(() => sink.start());
  after(async () => {
    await sink.stop();
    for (const p of projects) p.cleanup();
  });

  function transportWith(mail: Record<string, unknown> = {}, files: (dir: string) => void = () => undefined) {
    const project = makeProject({ settings: { mail: { from: FROM, ...mail, smtpUrl: sink.url } } });
    projects.push(project);
    files(project.dir);
    return createTransport(project.config());
  }

  const messageId = (n: string) => `<${n.replace(/\W+/g, '-')}@example.org>`;
  const withId = (name: string) => Buffer.from(`Message-ID: ${messageId(name)}\r\n${MESSAGES[name]}`);

  it("delivers each message as nodemailer's sendMail({raw}) does, byte for byte, to the envelope given", async () => {
    const ours = transportWith();
    const reference = nodemailer.createTransport({ url: sink.url, pool: true });
    try {
      for (const name of Object.keys(MESSAGES)) {
        const raw = withId(name);
        const result = await ours.sendRaw!(`ours@example.com`, raw, messageId(name));
        assert.equal(result.messageId, messageId(name));
        assert.match(result.response, /^250 /);
        assert.ok(result.size !== undefined && result.size >= raw.length, `${name}: size ${result.size}`);
        await reference.sendMail({ envelope: { from: 'serial@example.org', to: ['ref@example.com'] }, raw });
        const [got] = sink.to('ours@example.com').slice(-1);
        const [want] = sink.to('ref@example.com').slice(-1);
        assert.equal(got!.from, 'serial@example.org', name);
        assert.deepEqual(got!.to, ['ours@example.com'], name);
        assert.equal(got!.raw.toString('latin1'), want!.raw.toString('latin1'), name);
      }
    } finally {
      ours.close();
      reference.close();
    }
  });

  it('signs each built message with DKIM exactly as sendMail({raw}) does, and the signature verifies', async () => {
    let keys: { privateKey: string; publicKey?: string } | undefined;
    const dkim = { domainName: 'example.org', keySelector: 'ledger' };
    const ours = transportWith({ dkim: { ...dkim, privateKeyFile: 'dkim.pem' } }, (dir) => {
      keys = makeKey('rsa2048');
      writeFileSync(path.join(dir, 'dkim.pem'), keys.privateKey);
    });
    const reference = nodemailer.createTransport({
      url: sink.url,
      pool: true,
      dkim: { ...dkim, privateKey: keys!.privateKey },
    });
    try {
      for (const name of Object.keys(MESSAGES)) {
        await ours.sendRaw!('signed@example.com', withId(name), messageId(name));
        await reference.sendMail({
          envelope: { from: 'serial@example.org', to: ['signed-ref@example.com'] },
          raw: withId(name),
        });
        const [got] = sink.to('signed@example.com').slice(-1);
        const [want] = sink.to('signed-ref@example.com').slice(-1);
        assert.match(got!.raw.toString('latin1'), /^DKIM-Signature: /, name);
        assert.equal(got!.raw.toString('latin1'), want!.raw.toString('latin1'), name);
        // nodemailer's signer hashes a bare LF or CR inside the body as it is, while the wire
        // carries CRLF: such a message fails to verify by either path. Ours never hold one.
        if (name !== 'bare LF and CR inside')
          assert.equal(verifyDkim(got!.raw, createPublicKey(keys!.publicKey!)), undefined, name);
      }
    } finally {
      ours.close();
      reference.close();
    }
  });

  it('sends international domains in the envelope as punycode, needing no SMTPUTF8, as sendMail does', async () => {
    const ours = transportWith({ from: 'The Ledger <serial@bücher.example>' });
    const reference = nodemailer.createTransport({ url: sink.url, pool: true });
    try {
      await ours.sendRaw!('leser@bücher.example', withId('ends in CRLF'), messageId('idn'));
      await reference.sendMail({
        envelope: { from: 'serial@bücher.example', to: ['leser@bücher.example'] },
        raw: withId('ends in CRLF'),
      });
      const [got, want] = sink.to('leser@bücher.example').slice(-2);
      assert.ok(got && want, 'both messages arrived');
      assert.equal(got.mailFromArgs.SMTPUTF8, undefined, 'our MAIL FROM asked for SMTPUTF8');
      assert.deepEqual(got.mailFromArgs, want.mailFromArgs);
      assert.equal(got.from, want.from);
    } finally {
      ours.close();
      reference.close();
    }
  });

  it("rejects a refused recipient with the server's reply, and the pool goes on with the next", async () => {
    const ours = transportWith();
    sink.rcptRule = (address) =>
      address === 'refused@example.com' ? { code: 550, message: 'No such user here' } : undefined;
    try {
      await assert.rejects(ours.sendRaw!('refused@example.com', withId('ends in CRLF'), '<r@example.org>'), {
        responseCode: 550,
        response: /No such user here/,
      });
      await ours.sendRaw!('after@example.com', withId('ends in CRLF'), '<a@example.org>');
      assert.equal(sink.to('after@example.com').length, 1);
    } finally {
      sink.rcptRule = undefined;
      ours.close();
    }
  });

  it('keeps to mail.ratePerSecond for built and composed messages alike: the third of three waits a second', async () => {
    // Virtual time: a wait moves the clock on at once. nodemailer's own limiter let all
    // three go within a tenth of a second (each new connection's first message is uncounted).
    const waits: number[] = [];
    const clock = {
      t: 0,
      now: () => clock.t,
      sleep: (ms: number) => (waits.push(ms), (clock.t += ms), Promise.resolve()),
    };
    const project = makeProject({ settings: { mail: { smtpUrl: sink.url, from: FROM, ratePerSecond: 2 } } });
    projects.push(project);
    const ours = createTransport(project.config(), clock);
    try {
      const mail = { subject: 'Hi', html: '<p>Hi</p>', text: 'Hi', messageId: '<p3@example.org>' };
      await Promise.all([
        ours.sendRaw!('paced1@example.com', withId('ends in CRLF'), '<p1@example.org>'),
        ours.sendRaw!('paced2@example.com', withId('ends in CRLF'), '<p2@example.org>'),
        ours.send({ ...mail, to: 'paced3@example.com' }),
      ]);
      assert.deepEqual(waits, [1000]);
      assert.equal(sink.received.filter((r) => r.to[0]!.startsWith('paced')).length, 3);
    } finally {
      ours.close();
    }
  });
});
