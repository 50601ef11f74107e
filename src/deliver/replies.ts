// What an SMTP failure means for the message, the reader and the run. Only the relay's
// word about the mailbox (5.1.x) is the reader's fault; a policy refusal (5.7.x: sender
// not verified, relay denied) or a refusal of the session is the operator's, and must
// never bounce or fail a list.

export interface Failure {
  /** transient: try again later; permanent: this message will not go; fatal: no message will (session refused). */
  kind: 'transient' | 'permanent' | 'fatal';
  message: string;
  /** Reply code and enhanced class ("554 5.7"): what a storm of refusals from a misconfigured relay has in common. */
  replyClass: string;
  /** 5.7.x: the relay's policy refused us. */
  policy: boolean;
  /** The mailbox itself was refused: counts towards delivery.bounceLimit. */
  hardBounce: boolean;
}

interface SmtpError {
  responseCode?: number;
  code?: string;
  command?: string;
  response?: string;
  message?: string;
}

/** RFC 3463 status (5.1.1) at the start of a reply's text, after its code. */
const ENHANCED = /^\d{3}[ -]([245])\.(\d{1,3})\.\d{1,3}\b/;
/** Without an enhanced status, these RCPT replies speak of the mailbox (RFC 5321 4.2.3). */
const MAILBOX_CODES = new Set([550, 551, 553]);

export function classify(err: unknown): Failure {
  const e = err as SmtpError;
  const message = (e.response ?? e.message ?? String(err)).replace(/\s+/g, ' ').slice(0, 500);
  const code = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  const enhanced = ENHANCED.exec(e.response ?? '');
  const subject = enhanced ? `${enhanced[1]}.${enhanced[2]}` : undefined;
  const replyClass = `${code ?? e.code ?? 'error'}${subject ? ` ${subject}` : ''}`;
  const base = { message, replyClass, policy: false, hardBounce: false };
  if (code !== undefined && code >= 500) {
    const policy = subject === '5.7';
    if (e.code === 'EENVELOPE' && e.command === 'RCPT TO') {
      return { ...base, kind: 'permanent', policy, hardBounce: subject ? subject === '5.1' : MAILBOX_CODES.has(code) };
    }
    if (e.code === 'EMESSAGE') return { ...base, kind: 'permanent', policy, hardBounce: subject === '5.1' };
    // MAIL FROM, AUTH and the like: every message would be refused alike.
    return { ...base, kind: 'fatal', policy };
  }
  if (e.code === 'EAUTH' || e.code === 'ETLS' || e.code === 'ECONFIG') return { ...base, kind: 'fatal' };
  return { ...base, kind: 'transient' };
}

/** Exponential backoff with jitter (half to all of the step), capped. */
export const backoffMs = (attempt: number, base: number, max: number, random = Math.random): number =>
  Math.min(max, base * 2 ** (attempt - 1)) * (0.5 + random() / 2);
