// A real SMTP server on 127.0.0.1 (smtp-server) that keeps what it receives and can be
// told to answer with failures, for delivery tests.
import { once } from 'node:events';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerAddress } from 'smtp-server';

export interface Received {
  from: string;
  to: string[];
  raw: Buffer;
  /** MAIL FROM's parameters as the client sent them (SMTPUTF8 when it needed UTF-8 addresses). */
  mailFromArgs: Record<string, unknown>;
}

/** A header as it was sent (folded lines joined), not as mailparser interprets it. */
export function headerValue(mail: ParsedMail, name: string): string | undefined {
  const line = mail.headerLines.find((h) => h.key === name.toLowerCase())?.line;
  return line
    ?.slice(line.indexOf(':') + 1)
    .replace(/\r?\n[ \t]+/g, ' ')
    .trim();
}

export interface Refusal {
  code: number;
  message: string;
}

/** Return an SMTP reply to refuse a recipient, or undefined to accept it. */
export type RcptRule = (address: string, attempt: number) => Refusal | undefined;

const refuse = (refusal: Refusal): Error => Object.assign(new Error(refusal.message), { responseCode: refusal.code });

export class SmtpSink {
  readonly received: Received[] = [];
  /** Messages accepted, kept or not. */
  count = 0;
  /** Session errors (connection resets and the like). */
  readonly errors: Error[] = [];
  rcptRule: RcptRule | undefined;
  /** Return an SMTP reply to refuse the sender (MAIL FROM), or undefined to accept it. */
  mailFromRule: ((address: string) => Refusal | undefined) | undefined;
  /** Return an SMTP reply to refuse the message after its data, or undefined to accept it. */
  dataRule: ((to: string[]) => Refusal | undefined) | undefined;
  /** How long the server takes to answer each message's data (a slow relay). */
  dataDelayMs = 0;
  private readonly attempts = new Map<string, number>();
  private server: SMTPServer | undefined;
  port = 0;

  /** `keep: false` only counts messages: benchmarks push more mail than memory holds. */
  constructor(private readonly opts: { keep?: boolean } = {}) {}

  async start(port = 0): Promise<number> {
    this.server = new SMTPServer({
      secure: false,
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      size: 10 * 1024 * 1024,
      // stop() is an outage, not a drain: open sessions get 421 and are closed at once
      // (smtp-server would otherwise wait 30 s for pooled clients to hang up).
      closeTimeout: 1,
      onMailFrom: (address: SMTPServerAddress, _session, cb) => {
        const refusal = this.mailFromRule?.(address.address);
        cb(refusal && refuse(refusal));
      },
      onRcptTo: (address: SMTPServerAddress, _session, cb) => {
        const n = (this.attempts.get(address.address) ?? 0) + 1;
        this.attempts.set(address.address, n);
        const refusal = this.rcptRule?.(address.address, n);
        cb(refusal && refuse(refusal));
      },
      onData: (stream, session, cb) => {
        const chunks: Buffer[] = [];
        const keep = this.opts.keep !== false;
        stream.on('data', (c: Buffer) => keep && chunks.push(c));
        stream.on('end', () =>
          this.afterDelay(() => {
            const refusal = this.dataRule?.(session.envelope.rcptTo.map((r) => r.address));
            if (refusal) return cb(refuse(refusal));
            this.count++;
            if (!keep) return cb();
            this.received.push({
              from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
              mailFromArgs: (session.envelope.mailFrom && session.envelope.mailFrom.args) || {},
              to: session.envelope.rcptTo.map((r) => r.address),
              raw: Buffer.concat(chunks),
            });
            cb();
          }),
        );
      },
    });
    // A client that dies mid-session (a killed sender) resets its sockets; a server takes that in its stride.
    this.server.on('error', (err) => this.errors.push(err));
    this.server.listen(port, '127.0.0.1');
    await once(this.server.server, 'listening');
    this.port = (this.server.server.address() as { port: number }).port;
    return this.port;
  }

  private afterDelay(answer: () => void): void {
    if (this.dataDelayMs > 0) setTimeout(answer, this.dataDelayMs);
    else answer();
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  to(address: string): Received[] {
    return this.received.filter((r) => r.to.includes(address));
  }

  parse(r: Received): Promise<ParsedMail> {
    return simpleParser(r.raw);
  }

  /** Waits until `predicate` holds over what was received (background mail), or fails. */
  async waitFor(predicate: (received: Received[]) => boolean, timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!predicate(this.received)) {
      if (Date.now() > until) throw new Error(`timed out waiting for mail; received ${this.received.length}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
