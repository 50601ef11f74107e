// The headers mail filters and inbox tools read (List-Id, List-Unsubscribe, Auto-Submitted,
// Feedback-ID), checked as the bytes nodemailer writes and as a parser reads them back.
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { ConfigError, loadConfig, type Config } from '../../src/config.ts';
import { listHeaders, listId } from '../../src/deliver/headers.ts';
import { makeProject } from '../helpers/project.ts';

const defaults = loadConfig({ cwd: tmpdir(), env: {} });
const config = (mail: Partial<Config['mail']> = {}): Config => ({
  ...defaults,
  mail: { ...defaults.mail, from: 'Serial <serial@example.org>', ...mail },
});

/** RFC 2047 Q words back to text (adjacent words joined first: a character may span two). */
function decodeWords(value: string): string {
  return value.replace(/(?:=\?UTF-8\?Q\?[^?]*\?=\s*)+/gi, (run) => {
    const bytes = [...run.matchAll(/=\?UTF-8\?Q\?([^?]*)\?=/gi)]
      .map((m) =>
        m[1]!.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
      )
      .join('');
    return Buffer.from(bytes, 'latin1').toString('utf8') + (/\s$/.test(run) ? ' ' : '');
  });
}

/** The List-Id line exactly as nodemailer puts it on the wire (folding undone); the id as mailparser finds it, the name decoded. */
async function onTheWire(value: string): Promise<{ raw: string; decoded: { id: string; name: string } }> {
  const message = await new MailComposer({
    from: 'serial@example.org',
    to: 'reader@example.com',
    subject: 's',
    text: 't',
    headers: { 'List-Id': value },
  })
    .compile()
    .build();
  const head = message
    .toString('latin1')
    .split('\r\n\r\n')[0]!
    .replace(/\r\n[ \t]+/g, ' ');
  const raw = /^List-Id: (.*)$/im.exec(head)![1]!;
  const list = (await simpleParser(message)).headers.get('list') as { id?: { id: string } } | undefined;
  return { raw, decoded: { id: list?.id?.id ?? '', name: decodeWords(raw.slice(0, raw.lastIndexOf(' <'))) } };
}

/** The `<…>` part of a List-Id: what filters match on. */
const idOf = (value: string): string => /<([^<>]+)>$/.exec(value)?.[1] ?? '';

describe('List-Id', () => {
  it('keeps the id of a plain title as before: filters set up by readers keep working', () => {
    assert.equal(
      listId(config(), "The Lamplighter's Ledger"),
      "The Lamplighter's Ledger <the-lamplighter-s-ledger.example.org>",
    );
  });

  it('encodes a title with ":" as a phrase, so the header stays valid and the id visible', async () => {
    const value = listId(config(), 'Dawn: A Harbour Story');
    const { raw, decoded } = await onTheWire(value);
    assert.match(raw, /^(=\?UTF-8\?Q\?[^?\s:]+\?= ?)+ <dawn-a-harbour-story\.example\.org>$/, raw);
    assert.equal(decoded.id, 'dawn-a-harbour-story.example.org');
    assert.equal(decoded.name, 'Dawn: A Harbour Story');
  });

  it('encodes only the phrase of a non-ASCII title (RFC 2047); the <id> stays readable to filters', async () => {
    const value = listId(config(), 'Crème brûlée à l’Hôtel-Dieu');
    const { raw, decoded } = await onTheWire(value);
    assert.match(raw, /^(=\?UTF-8\?Q\?[^?\s]+\?= ?)+ <creme-brulee-a-l-hotel-dieu\.example\.org>$/, raw);
    assert.equal(decoded.id, 'creme-brulee-a-l-hotel-dieu.example.org');
    assert.equal(decoded.name, 'Crème brûlée à l’Hôtel-Dieu');
  });

  it('gives titles with no Latin letters distinct, stable ids', async () => {
    const titles = ['Война и мир', 'Преступление и наказание', '東京物語', '大阪物語', '百年の孤独'];
    const ids = titles.map((t) => idOf(listId(config(), t)));
    assert.equal(new Set(ids).size, titles.length, ids.join(' '));
    for (const id of ids) assert.match(id, /^[a-z0-9-]+\.example\.org$/);
    assert.deepEqual(
      titles.map((t) => idOf(listId(config(), t))),
      ids,
      'the same title, the same id',
    );
    const { raw, decoded } = await onTheWire(listId(config(), titles[0]!));
    assert.ok(raw.endsWith(` <${ids[0]}>`), raw);
    assert.equal(decoded.name, titles[0]);
  });

  it('keeps titles apart that share their Latin letters but not the rest', () => {
    const a = idOf(listId(config(), 'Tokyo 東京'));
    const b = idOf(listId(config(), 'Tokyo 大阪'));
    assert.notEqual(a, b);
    assert.match(a, /^tokyo-[a-z0-9]+\.example\.org$/);
  });

  it("keeps a long title's id short enough for the 255 characters RFC 2919 allows", () => {
    const id = idOf(
      listId(
        config(),
        'The Extraordinary and Altogether Unlikely Adventures of a Lamplighter Who Kept a Ledger of Every Light in Harrow Street',
      ),
    );
    assert.ok(id.length <= 100, id);
    assert.match(id, /^the-extraordinary-and-altogether-[a-z-]*[a-z]\.example\.org$/);
  });

  it('takes mail.listId as given, encoding only its phrase', async () => {
    assert.equal(
      listId(config({ listId: 'My Story <my-story.example.org>' }), 'ignored'),
      'My Story <my-story.example.org>',
    );
    const { raw, decoded } = await onTheWire(
      listId(config({ listId: 'Mon récit <mon-recit.example.org>' }), 'ignored'),
    );
    assert.ok(raw.endsWith(' <mon-recit.example.org>') && !raw.includes('récit'), raw);
    assert.equal(decoded.name, 'Mon récit');
  });
});

describe('list headers by kind of email', () => {
  const URL = 'https://serial.example.org/unsubscribe?token=abc';

  it('offers only the one-click HTTPS unsubscribe: nothing reads a mailto mailbox', () => {
    const h = listHeaders(config(), 'A Story', URL, 'installment');
    assert.equal(h['List-Unsubscribe'], `<${URL}>`);
    assert.equal(h['List-Unsubscribe-Post'], 'List-Unsubscribe=One-Click');
  });

  it('refuses the old mail.unsubscribeMailto in one line saying why', () => {
    const project = makeProject({ settings: { mail: { unsubscribeMailto: 'leave@example.org' } } });
    try {
      assert.throws(
        () => project.config(),
        (err: Error) => {
          assert.ok(err instanceof ConfigError);
          assert.match(
            err.message,
            /feuilleton\.yaml: mail\.unsubscribeMailto is no longer supported: .*remove the setting$/,
          );
          assert.doesNotMatch(err.message, /\n/);
          return true;
        },
      );
    } finally {
      project.cleanup();
    }
  });

  it('marks confirmation and welcome as automatic (Auto-Submitted: auto-generated), installments and The End not', () => {
    assert.equal(listHeaders(config(), 'A Story', URL, 'confirm')['Auto-Submitted'], 'auto-generated');
    assert.equal(listHeaders(config(), 'A Story', URL, 'welcome')['Auto-Submitted'], 'auto-generated');
    assert.equal(listHeaders(config(), 'A Story', URL, 'installment')['Auto-Submitted'], undefined);
    assert.equal(listHeaders(config(), 'A Story', URL, 'the-end')['Auto-Submitted'], undefined);
  });

  it("sends no Precedence header: Gmail's current guidelines no longer ask for it", () => {
    for (const kind of ['confirm', 'welcome', 'installment', 'the-end'] as const)
      assert.equal(listHeaders(config(), 'A Story', URL, kind).Precedence, undefined);
  });

  it('adds Feedback-ID (kind, story, sender id) only when mail.feedbackId is on', () => {
    assert.equal(listHeaders(config(), 'A Story', URL, 'installment')['Feedback-ID'], undefined);
    const on = config({ feedbackId: true });
    assert.equal(
      listHeaders(on, 'A Story: Told', URL, 'installment')['Feedback-ID'],
      'installment:a-story-told:feuilleton',
    );
    assert.equal(
      listHeaders(on, 'Война и мир', URL, 'the-end')['Feedback-ID'],
      `the-end:${idOf(listId(on, 'Война и мир')).replace('.example.org', '')}:feuilleton`,
    );
  });
});
