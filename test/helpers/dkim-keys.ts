// DKIM private keys of every kind an operator might point mail.dkim.privateKeyFile at,
// made fresh with node:crypto, plus files that only look like keys.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

export type KeyKind =
  'rsa2048' | 'rsa1024' | 'rsa512' | 'rsa-pss' | 'ec' | 'ed25519' | 'garbage' | 'truncated' | 'corrupt';

const pkcs8 = { type: 'pkcs8', format: 'pem' } as const;
const spki = { type: 'spki', format: 'pem' } as const;

/** A PEM private key of that kind and, for real keys, its public half (PEM). */
export function makeKey(kind: KeyKind): { privateKey: string; publicKey?: string } {
  switch (kind) {
    case 'rsa2048':
    case 'rsa1024':
    case 'rsa512':
      return generateKeyPairSync('rsa', {
        modulusLength: Number(kind.slice(3)),
        privateKeyEncoding: pkcs8,
        publicKeyEncoding: spki,
      });
    case 'rsa-pss':
      return generateKeyPairSync('rsa-pss', {
        modulusLength: 2048,
        privateKeyEncoding: pkcs8,
        publicKeyEncoding: spki,
      });
    case 'ec':
      return generateKeyPairSync('ec', { namedCurve: 'P-256', privateKeyEncoding: pkcs8, publicKeyEncoding: spki });
    case 'ed25519':
      return generateKeyPairSync('ed25519', { privateKeyEncoding: pkcs8, publicKeyEncoding: spki });
    case 'garbage':
      return {
        privateKey: `-----BEGIN PRIVATE KEY-----\n${randomBytes(600).toString('base64')}\n-----END PRIVATE KEY-----\n`,
      };
    case 'truncated': {
      // Half a key, as an interrupted copy and paste leaves it.
      const lines = makeKey('rsa2048').privateKey.trim().split('\n');
      return { privateKey: [...lines.slice(0, 12), lines.at(-1)].join('\n') + '\n' };
    }
    case 'corrupt': {
      // A key whose modulus was damaged: it still loads, but what it signs never verifies.
      const lines = makeKey('rsa2048').privateKey.trim().split('\n');
      lines[3] = 'A'.repeat(lines[3]!.length);
      return { privateKey: lines.join('\n') + '\n' };
    }
  }
}

/** Writes a key of that kind to DIR/NAME and returns its public half, if it has one. */
export function writeKey(dir: string, name: string, kind: KeyKind): string | undefined {
  const { privateKey, publicKey } = makeKey(kind);
  writeFileSync(path.join(dir, name), privateKey);
  return publicKey;
}
