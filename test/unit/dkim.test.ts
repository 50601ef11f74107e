// The DKIM key check: every kind of key an operator might have, judged before any mail;
// the verifier checked against what nodemailer's own signer produces; the DNS record.
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { ConfigError } from '../../src/config.ts';
import {
  dkimTxtRecord,
  inspectDkimKey,
  loadDkimKey,
  nodemailerDkim,
  verifyDkim,
  type DkimKey,
} from '../../src/deliver/dkim.ts';
import { writeKey, type KeyKind } from '../helpers/dkim-keys.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'feuilleton-dkim-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const configWith = (privateKeyFile: string) => ({
  root: dir,
  file: path.join(dir, 'feuilleton.yaml'),
  mail: { dkim: { domainName: 'example.org', keySelector: 'feuilleton', privateKeyFile } } as never,
});

function keyOf(kind: KeyKind): { key: DkimKey; publicKey: string } {
  const publicKey = writeKey(dir, `${kind}.pem`, kind)!;
  const key = loadDkimKey(configWith(`${kind}.pem`));
  assert.ok(key);
  return { key, publicKey };
}

describe('loadDkimKey', () => {
  test('no mail.dkim: nothing to load', () => {
    assert.equal(loadDkimKey({ root: dir, file: undefined, mail: {} as never }), undefined);
  });

  const refused: Array<[KeyKind, RegExp]> = [
    ['garbage', /cannot be read as a private key \(.+\): it must be an unencrypted PEM RSA private key/],
    ['truncated', /cannot be read as a private key/],
    [
      'corrupt',
      /fails a test signature: what it signs does not verify against its own public key \(signature does not verify\)/,
    ],
    ['ed25519', /is an Ed25519 key: nodemailer signs rsa-sha256 only, and many receivers do not verify ed25519-sha256/],
    ['ec', /is an EC key: DKIM has no ECDSA algorithm/],
    ['rsa-pss', /is an RSA-PSS key/],
    ['rsa512', /is a 512-bit RSA key: too short, receivers ignore DKIM signatures made with under 1024 bits/],
  ];
  for (const [kind, reason] of refused) {
    test(`${kind}: one ConfigError line naming the file, the setting, the reason and the openssl command`, () => {
      writeKey(dir, `${kind}.pem`, kind);
      const config = configWith(`${kind}.pem`);
      assert.throws(
        () => loadDkimKey(config),
        (err: Error) => {
          assert.ok(err instanceof ConfigError);
          assert.ok(!err.message.includes('\n'), err.message);
          assert.ok(
            err.message.startsWith(`${config.file}: mail.dkim.privateKeyFile ${path.join(dir, `${kind}.pem`)} `),
            err.message,
          );
          assert.match(err.message, reason);
          assert.match(
            err.message,
            /; make a 2048-bit RSA key with: openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim-private\.pem$/,
          );
          return true;
        },
      );
      assert.equal(inspectDkimKey(config).key, undefined);
    });
  }

  test('a missing file: says it cannot be opened and why', () => {
    assert.match(
      inspectDkimKey(configWith('nowhere.pem')).problem ?? '',
      /nowhere\.pem cannot be opened \(ENOENT\): point it at your PEM private key/,
    );
  });

  test('RSA 2048 and 1024 load, with their size (check warns about 1024)', () => {
    assert.equal(keyOf('rsa2048').key.bits, 2048);
    assert.equal(keyOf('rsa1024').key.bits, 1024);
  });
});

describe('dkimTxtRecord', () => {
  test('SELECTOR._domainkey.DOMAIN TXT with the public key, in strings of at most 255 characters', () => {
    const { key, publicKey } = keyOf('rsa2048');
    const record = dkimTxtRecord(key);
    const m = /^feuilleton\._domainkey\.example\.org TXT ((?:"[^"]*" ?)+)$/.exec(record);
    assert.ok(m, record);
    const strings = [...m[1]!.matchAll(/"([^"]*)"/g)].map((s) => s[1]!);
    assert.ok(strings.length > 1 && strings.every((s) => s.length <= 255), record);
    const spki = createPublicKey(publicKey).export({ type: 'spki', format: 'der' }).toString('base64');
    assert.equal(strings.join(''), `v=DKIM1; k=rsa; p=${spki}`);
  });
});

describe('verifyDkim, over what nodemailer signs', () => {
  async function signed(key: DkimKey): Promise<string> {
    const transport = nodemailer.createTransport({
      streamTransport: true,
      buffer: true,
      newline: 'unix',
      dkim: nodemailerDkim(key),
    });
    const info = await transport.sendMail({
      from: 'The Ledger <serial@example.org>',
      to: 'reader@example.org',
      subject: 'Part 1 — “The Lamp”',
      text: 'First  line   with  blanks.  \n\n\nLast line.\n\n',
      html: '<p>First line</p>',
      headers: {
        'List-Unsubscribe': '<https://example.org/unsubscribe?token=abc>',
        'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      },
    });
    return (info.message as Buffer).toString('latin1');
  }

  test('verifies a multipart message with encoded headers, even saved with LF line ends', async () => {
    const { key, publicKey } = keyOf('rsa2048');
    const raw = await signed(key);
    assert.match(raw, /h=[^;]*list-unsubscribe:list-unsubscribe-post/);
    assert.equal(verifyDkim(raw, createPublicKey(publicKey)), undefined);
  });

  test('finds a changed header, a changed body, the wrong key, and no signature', async () => {
    const { key, publicKey } = keyOf('rsa2048');
    const raw = await signed(key);
    const pub = createPublicKey(publicKey);
    assert.equal(verifyDkim(raw.replace(/^To: reader@/m, 'To: other@'), pub), 'signature does not verify');
    assert.equal(verifyDkim(raw.replace('Last line.', 'Lost line.'), pub), 'body hash does not match');
    assert.equal(verifyDkim(raw, keyOf('rsa2048').key.publicKey), 'signature does not verify');
    assert.equal(verifyDkim(raw.replace(/^DKIM-Signature:/m, 'X-Old-Signature:'), pub), 'no DKIM-Signature header');
  });
});
