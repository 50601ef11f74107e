// Amazon SNS messages posted to an HTTPS subscription: the envelope, and its signature
// checked the way Amazon documents it (string to sign from fixed keys in a fixed order,
// SHA1withRSA for SignatureVersion 1, SHA256withRSA for 2, the certificate fetched only
// from an SNS host over https).
import { verify, X509Certificate, type KeyObject } from 'node:crypto';

export type FetchText = (url: string) => Promise<string>;

export type SnsType = 'Notification' | 'SubscriptionConfirmation' | 'UnsubscribeConfirmation';

export interface SnsEnvelope {
  Type: SnsType;
  MessageId: string;
  TopicArn: string;
  Message: string;
  Timestamp: string;
  Signature: string;
  SignatureVersion: string;
  SigningCertURL: string;
  Subject?: string;
  SubscribeURL?: string;
  Token?: string;
}

const SIGNED_KEYS: Record<SnsType, Array<keyof SnsEnvelope>> = {
  Notification: ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'],
  SubscriptionConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
  UnsubscribeConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
};
const OPTIONAL: ReadonlySet<keyof SnsEnvelope> = new Set(['Subject']);
const ALGORITHMS: Record<string, string> = { '1': 'sha1', '2': 'sha256' };

/** The envelope, or a reason it is not one (answered 400). */
export function parseEnvelope(body: unknown): SnsEnvelope | string {
  if (typeof body !== 'string') return 'expected an SNS message (JSON) as the body';
  let env: unknown;
  try {
    env = JSON.parse(body);
  } catch {
    return 'the body is not JSON';
  }
  if (typeof env !== 'object' || env === null) return 'the body is not a JSON object';
  const e = env as Record<string, unknown>;
  const type = e.Type;
  if (typeof type !== 'string' || !Object.hasOwn(SIGNED_KEYS, type))
    return `unknown SNS message Type ${JSON.stringify(type)}`;
  const required = [
    ...SIGNED_KEYS[type as SnsType].filter((k) => !OPTIONAL.has(k)),
    'Signature',
    'SignatureVersion',
    'SigningCertURL',
  ];
  const missing = required.filter((k) => typeof e[k] !== 'string');
  if (missing.length > 0) return `an SNS ${type} needs ${missing.join(', ')}`;
  if (e.Subject !== undefined && typeof e.Subject !== 'string') return 'Subject must be a string';
  return e as unknown as SnsEnvelope;
}

/** https on sns.<region>.amazonaws.com (or .com.cn), default port, no credentials. */
export function isSnsUrl(raw: string, opts: { pem?: boolean } = {}): boolean {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return false;
  }
  return (
    url.protocol === 'https:' &&
    url.port === '' &&
    url.username === '' &&
    url.password === '' &&
    /^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$/.test(url.hostname) &&
    (!opts.pem || url.pathname.endsWith('.pem'))
  );
}

/** GET with a timeout; no redirects, so a checked SNS URL cannot lead elsewhere. */
export async function fetchText(url: string): Promise<string> {
  const res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`GET ${url} answered HTTP ${res.status}`);
  return res.text();
}

export class SnsVerifier {
  // SNS signs with a handful of certificates, each at a stable URL: fetch each once.
  private readonly keys = new Map<string, Promise<KeyObject>>();

  constructor(
    private readonly fetch: FetchText,
    private readonly maxCached = 16,
  ) {}

  /**
   * False for a forgery: unknown SignatureVersion, a certificate URL that is not SNS's (not
   * fetched), or a signature that does not match. Throws when the certificate cannot be had.
   */
  async verify(env: SnsEnvelope): Promise<boolean> {
    const algorithm = ALGORITHMS[env.SignatureVersion];
    if (!algorithm || !isSnsUrl(env.SigningCertURL, { pem: true })) return false;
    const key = await this.key(env.SigningCertURL);
    const toSign = SIGNED_KEYS[env.Type]
      .filter((k) => env[k] !== undefined)
      .map((k) => `${k}\n${env[k]}\n`)
      .join('');
    return verify(algorithm, Buffer.from(toSign, 'utf8'), key, Buffer.from(env.Signature, 'base64'));
  }

  private key(url: string): Promise<KeyObject> {
    let key = this.keys.get(url);
    if (!key) {
      if (this.keys.size >= this.maxCached) this.keys.delete(this.keys.keys().next().value!);
      key = this.fetch(url).then((pem) => new X509Certificate(pem).publicKey);
      // A failed fetch is tried again by the next message, not remembered.
      key.catch(() => this.keys.delete(url));
      this.keys.set(url, key);
    }
    return key;
  }
}
