// The SMTP transport's built-message path (sendRaw) against a real smtp-server on
// 127.0.0.1: what the server receives is what nodemailer's own `sendMail({raw})` delivers,
// byte for byte, DKIM signatures verify, refusals carry the server's reply, and the rate
// limit paces every message.
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { verifyDkim } from '../../src/deliver/dkim.ts';
import { createTransport } from '../../src/deliver/transport.ts';
import { writeKey } from '../helpers/dkim-keys.ts';
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
    const project = makeProject({ settings: { mail: { smtpUrl: sink.url, from: FROM, ...mail } } });
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

  it('signs each built message with DKIM when a key is configured, and the signature verifies', async () => {
    let publicKey: string | undefined;
    const ours = transportWith(
      { dkim: { domainName: 'example.org', keySelector: 'ledger', privateKeyFile: 'dkim.pem' } },
      (dir) => (publicKey = writeKey(dir, 'dkim.pem', 'rsa2048')),
    );
    try {
      for (const name of ['ends in CRLF', 'no final newline', 'lines that start with dots']) {
        await ours.sendRaw!('signed@example.com', withId(name), messageId(name));
        const [got] = sink.to('signed@example.com').slice(-1);
        assert.match(got!.raw.toString('latin1'), /^DKIM-Signature: /, name);
        assert.equal(verifyDkim(got!.raw, createPublicKey(publicKey!)), undefined, name);
      }
    } finally {
      ours.close();
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
