// The DKIM key, checked the way a receiver will check its signatures. nodemailer signs
// rsa-sha256 only and, when signing fails, sends the message unsigned without a word; an
// EC key even yields a signature no receiver can verify. So the key is loaded, its kind
// and size judged, and a test message signed and verified before any mail goes out.
import { createHash, createPrivateKey, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import sign from 'nodemailer/lib/dkim/sign';
import { ConfigError, type Config } from '../config.ts';

/** Receivers ignore signatures made with shorter keys (RFC 8301). */
export const MIN_BITS = 1024;
export const RECOMMENDED_BITS = 2048;
export const KEYGEN_COMMAND =
  `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:${RECOMMENDED_BITS} ` + '-out dkim-private.pem';

export interface DkimKey {
  domainName: string;
  keySelector: string;
  /** Absolute path of the key file, for messages. */
  file: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  bits: number;
}

const WHY_NOT: Record<string, string> = {
  ed25519: 'is an Ed25519 key: nodemailer signs rsa-sha256 only, and many receivers do not verify ed25519-sha256',
  ec: 'is an EC key: DKIM has no ECDSA algorithm, so no receiver could verify its signatures',
  'rsa-pss': "is an RSA-PSS key: DKIM's rsa-sha256 needs a plain RSA key",
};

/** mail.dkim's key, or what is wrong with it (one line naming the setting, the reason and the fix). */
export type DkimInspection = { key: DkimKey | undefined; problem?: undefined } | { key?: undefined; problem: string };

export function inspectDkimKey(config: Pick<Config, 'mail' | 'root'>): DkimInspection {
  const dkim = config.mail.dkim;
  if (!dkim) return { key: undefined };
  const file = path.resolve(config.root, dkim.privateKeyFile);
  const refuse = (why: string) => ({
    problem: `mail.dkim.privateKeyFile ${file} ${why}; make a ${RECOMMENDED_BITS}-bit RSA key with: ${KEYGEN_COMMAND}`,
  });
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    return refuse(`cannot be opened (${(err as NodeJS.ErrnoException).code}): point it at your PEM private key`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    return refuse(
      `cannot be read as a private key (${(err as Error).message}): it must be an unencrypted PEM RSA private key`,
    );
  }
  const type = privateKey.asymmetricKeyType ?? 'unknown';
  if (type !== 'rsa') return refuse(WHY_NOT[type] ?? `is a ${type} key: DKIM signs with RSA (rsa-sha256)`);
  const bits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_BITS)
    return refuse(
      `is a ${bits}-bit RSA key: too short, receivers ignore DKIM signatures made with under ${MIN_BITS} bits`,
    );
  const key: DkimKey = {
    domainName: dkim.domainName,
    keySelector: dkim.keySelector,
    file,
    privateKey,
    publicKey: createPublicKey(privateKey),
    bits,
  };
  const problem = testSignature(key);
  if (problem)
    return refuse(
      'fails a test signature: what it signs does not verify against its own public key ' +
        `(${problem}), so the file is damaged`,
    );
  return { key };
}

/**
 * mail.dkim's key, refused as a ConfigError when it could not make signatures receivers
 * verify; undefined when DKIM is not configured.
 */
export function loadDkimKey(config: Pick<Config, 'mail' | 'root' | 'file'>): DkimKey | undefined {
  const { key, problem } = inspectDkimKey(config);
  if (problem) throw new ConfigError(`${config.file ?? 'config'}: ${problem}`);
  return key;
}

/** The options nodemailer's DKIM signer takes, with the very key that passed the test signature. */
export function nodemailerDkim(key: DkimKey) {
  return { domainName: key.domainName, keySelector: key.keySelector, privateKey: key.privateKey };
}

/** What to publish in DNS so receivers can verify the signatures. */
export function dkimTxtRecord(key: DkimKey): string {
  const value = `v=DKIM1; k=rsa; p=${key.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;
  // A TXT string holds at most 255 characters; a longer value is published as several
  // quoted strings, which receivers join.
  const strings = value.match(/.{1,255}/g)!.map((s) => `"${s}"`);
  return `${key.keySelector}._domainkey.${key.domainName} TXT ${strings.join(' ')}`;
}

const TEST_BODY = 'feuilleton DKIM self-test\r\n';

// nodemailer's signer is a stream around this one synchronous step, the step a bad key
// breaks; calling it directly keeps transport creation synchronous.
function testSignature(key: DkimKey): string | undefined {
  const lines = [
    `From: <dkim-test@${key.domainName}>`,
    `To: <dkim-test@${key.domainName}>`,
    'Subject: feuilleton DKIM self-test',
    'Message-ID: <dkim-test@feuilleton>',
  ];
  const headers = lines.map((line) => ({ key: line.slice(0, line.indexOf(':')).toLowerCase(), line }));
  const field = sign(headers, 'sha256', relaxedBodyHash(TEST_BODY), nodemailerDkim(key));
  if (!field) return 'nodemailer could not sign with it';
  return verifyDkim(`${field}\r\n${lines.join('\r\n')}\r\n\r\n${TEST_BODY}`, key.publicKey);
}

/** RFC 6376 3.4.4: runs of blanks become one space, none at line ends, no empty lines at the end. */
function relaxedBodyHash(body: string): string {
  const lines = body.split('\r\n').map((l) => l.replace(/[ \t]+/g, ' ').replace(/ $/, ''));
  const canonical = lines.join('\r\n').replace(/(\r\n)+$/, '');
  return createHash('sha256')
    .update(canonical ? `${canonical}\r\n` : '', 'latin1')
    .digest('base64');
}

/** RFC 6376 3.4.2: lower-case name, unfolded value, runs of blanks as one space, none at the ends. */
function relaxedHeader(field: string): string {
  const colon = field.indexOf(':');
  const value = field
    .slice(colon + 1)
    .replace(/\r\n/g, '')
    .replace(/[ \t]+/g, ' ')
    .trim();
  return `${field.slice(0, colon).trim().toLowerCase()}:${value}`;
}

/**
 * Verifies a message's first DKIM-Signature (rsa-sha256, relaxed/relaxed: what nodemailer
 * makes) against a public key, as a receiver would after its DNS lookup. Undefined when
 * it verifies, else what is wrong.
 */
export function verifyDkim(raw: Buffer | string, publicKey: KeyObject): string | undefined {
  // latin1 keeps each byte as one character: what is hashed is what was sent. Lines end
  // in CRLF on the wire, whatever a file copy of the message uses.
  const text = (typeof raw === 'string' ? raw : raw.toString('latin1')).replace(/\r?\n/g, '\r\n');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return 'no blank line after the headers';
  const fields = text
    .slice(0, end)
    .split(/\r\n(?![ \t])/)
    .map((line) => ({ name: line.slice(0, line.indexOf(':')).trim().toLowerCase(), line }));
  const signature = fields.find((f) => f.name === 'dkim-signature');
  if (!signature) return 'no DKIM-Signature header';
  const tags = new Map<string, string>();
  for (const tag of signature.line.slice(signature.line.indexOf(':') + 1).split(';')) {
    const eq = tag.indexOf('=');
    if (eq > 0) tags.set(tag.slice(0, eq).trim(), tag.slice(eq + 1).replace(/\s+/g, ''));
  }
  if (tags.get('a') !== 'rsa-sha256') return `algorithm ${tags.get('a')} is not rsa-sha256`;
  if (tags.get('c') !== 'relaxed/relaxed') return `canonicalization ${tags.get('c')} is not relaxed/relaxed`;
  if (tags.get('bh') !== relaxedBodyHash(text.slice(end + 4))) return 'body hash does not match';
  // Each name in h= takes the next instance of that header from the bottom up.
  const unused = fields.filter((f) => f !== signature);
  let signed = '';
  for (const name of (tags.get('h') ?? '').toLowerCase().split(':')) {
    const at = unused.findLastIndex((f) => f.name === name);
    if (at < 0) continue;
    signed += `${relaxedHeader(unused[at]!.line)}\r\n`;
    unused.splice(at, 1);
  }
  signed += relaxedHeader(signature.line.replace(/([:;][ \t\r\n]*b[ \t\r\n]*=)[^;]*/, '$1'));
  const ok = verify('sha256', Buffer.from(signed, 'latin1'), publicKey, Buffer.from(tags.get('b') ?? '', 'base64'));
  return ok ? undefined : 'signature does not verify';
}
