// Compose once, fill per reader: each reader's bytes must be exactly what nodemailer builds
// for that reader on its own (same date and boundary), whatever the values do to line
// wrapping: long links, international domains, scripts sent as base64, paced "next" links.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { MessageBuffers } from '../../src/deliver/compose.ts';
import { dateHeader } from '../../src/deliver/installment-mail.ts';
import { mailOptions } from '../../src/deliver/transport.ts';
import type { Runtime } from '../../src/runtime.ts';
import { composeSites, HARD_READERS } from '../helpers/compose-site.ts';

const newSite = composeSites();

const site = (settings: Record<string, unknown>, story?: string): Runtime => newSite(settings, { story });
const READERS = HARD_READERS;

async function check(runtime: Runtime, readers: string[]): Promise<number> {
  const { app, links, ids, renderer } = runtime;
  const inst = app.store.installments.get(1)!;
  const template = await runtime.send.installmentMail!.template(inst, '2026-12-07T06:00:00.000Z');
  assert.ok(template, 'the installment email composes once');
  let compared = 0;
  for (const [i, email] of readers.entries()) {
    const sub = app.store.subscribers.create({ email, status: 'active' });
    const date = new Date(Date.UTC(2026, 11, 2, 21, 0, i));
    const messageId = ids.installment(sub, 1);
    const ours: Buffer = template.bytesFor(sub, { messageId, date: dateHeader(date) });

    // nodemailer on its own, for this reader: the same email filled with the reader's links
    // straight from Links, and composed whole.
    const prepared = await renderer.installment(inst, { nextDate: '2026-12-07T06:00:00.000Z' });
    const values = links.forReader(sub, ['unsubscribeUrl', ...prepared.placeholders]);
    const filled = prepared.fill(values);
    const boundary: string = /boundary="--_NmP-([0-9a-f]+)-Part_1"/.exec(ours.toString('latin1'))![1]!;
    const mail = runtime.send.lists.address(filled, sub.email, values.unsubscribeUrl!, messageId, 'installment');
    const theirs: Buffer = await new MailComposer({ ...mailOptions(app.config, mail), date, baseBoundary: boundary })
      .compile()
      .build();
    assert.equal(ours.toString('latin1'), theirs.toString('latin1'), `byte for byte for ${email}`);
    compared++;
  }
  return compared;
}

describe('compose once, fill per reader', () => {
  it('is byte for byte what nodemailer builds, for many readers (quoted-printable story)', async () => {
    const runtime = site({ baseUrl: 'https://serial.example.org' });
    const many = Array.from({ length: 60 }, (_, i) => `reader${'x'.repeat(i)}${i}@example${i % 7}.org`);
    assert.equal(await check(runtime, [...READERS, ...many]), READERS.length + many.length);
  });

  it('with links long enough to wrap differently from one reader to the next', async () => {
    const runtime = site({
      baseUrl: 'https://serial.example.org/a/rather/long/path/so/that/every/link/wraps/across/quoted-printable/lines',
    });
    await check(runtime, [...READERS, ...Array.from({ length: 40 }, (_, i) => `r${'y'.repeat(i * 3)}@example.net`)]);
  });

  it('paced, with the reader\'s own "next one now" link', async () => {
    await check(site({ baseUrl: 'https://serial.example.org', mode: 'paced' }), READERS);
  });

  it('a story in another script, sent as base64', async () => {
    const paragraph =
      'Фонарщик шёл по набережной, и каждый фонарь загорался за его спиной, будто кто-то читал книгу вслух.';
    const story = `Title: Книга фонарщика\nBy Автор\n\n${Array.from({ length: 12 }, () => paragraph).join('\n\n')}\n`;
    await check(site({ baseUrl: 'https://serial.example.org' }, story), READERS);
  });
});

describe('InstallmentMail', () => {
  it('keeps one template per installment: a new "next" date replaces the old, composed again if asked for', async () => {
    const runtime = site({});
    const inst = runtime.app.store.installments.get(1)!;
    const mail = runtime.send.installmentMail!;
    const [week1, week2] = ['2026-12-07T06:00:00.000Z', '2026-12-14T06:00:00.000Z'];
    const first = await mail.template(inst, week1);
    assert.ok(first);
    assert.equal(await mail.template(inst, week1), first);
    assert.notEqual(await mail.template(inst, week2), first);
    assert.notEqual(await mail.template(inst, week1), first, 'the first was let go');
  });
});

describe('MessageBuffers', () => {
  it('hands back the memory it was given for the next message, up to `keep` buffers', () => {
    const buffers = new MessageBuffers(2);
    const a = buffers.take(30_000);
    const b = buffers.take(30_000);
    const c = buffers.take(30_000);
    assert.equal(a.length, 30_000);
    assert.equal(buffers.made, 3);
    for (const bytes of [a, b, c]) buffers.give(bytes);
    const again = [buffers.take(29_000), buffers.take(30_500)];
    assert.deepEqual(
      again.map((x) => x.length),
      [29_000, 30_500],
    );
    assert.equal(again[0]!.buffer, b.buffer, 'the last given back first');
    assert.equal(again[1]!.buffer, a.buffer, 'then the one before; the third, beyond keep, dropped');
    assert.equal(buffers.made, 3);
    assert.notEqual(buffers.take(30_000).buffer, c.buffer);
  });

  it('a message longer than a spare gets a new buffer; bytes it did not make are never kept', () => {
    const buffers = new MessageBuffers(4);
    buffers.give(buffers.take(1_000));
    const long = buffers.take(5_000);
    assert.equal(long.length, 5_000);
    assert.equal(buffers.made, 2);
    // A small Buffer shares node's pool with other data: handing it out again would overwrite that.
    const pooled = Buffer.from('shared pool');
    buffers.give(pooled);
    buffers.give(Buffer.alloc(40_000));
    assert.equal(buffers.take(100).length, 100);
    assert.equal(buffers.made, 3);
  });

  it('a buffer given back twice is kept once: two messages never share one', () => {
    const buffers = new MessageBuffers(4);
    const a = buffers.take(1_000);
    buffers.give(a);
    buffers.give(a);
    const [x, y] = [buffers.take(1_000), buffers.take(1_000)];
    assert.equal(x.buffer, a.buffer);
    assert.notEqual(y.buffer, a.buffer);
  });
});
