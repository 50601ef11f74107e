// Confirmation, welcome and "The End" emails through the notices ledger (promise 10). A
// request only queues a row (in the transaction that owes the email); this sender takes
// due rows, sends them through the same transport as installments, and retries
// temporary failures with backoff until the notice is no longer worth sending.
import { randomBytes } from 'node:crypto';
import type { Config } from '../config.ts';
import type { EmailRenderer, FilledEmail, PreparedEmail } from '../render/email.ts';
import type { Notice, NoticeKind, NoticeStore } from '../store/notices.ts';
import type { Subscriber, SubscriberStore } from '../store/subscribers.ts';
import type { MessageIds } from './headers.ts';
import { dateHeader } from './installment-mail.ts';
import type { NoticeMail } from './notice-mail.ts';
import { backoffMs, classify } from './replies.ts';
import type { MailTransport, OutgoingMail } from './transport.ts';

/** A sender that died holding notices gives them back after this long. */
const LEASE_MS = 120_000;
/** An idle sender still looks for due rows this often (another process may have queued some). */
const IDLE_POLL_MS = 30_000;
/** Retries of a notice stop after this long (a confirmation: when its link expires). */
const NOTICE_LIFETIME_MS = 24 * 3_600_000;
/** Retries wait at least this long at the cap: a relay outage can last hours. */
const MIN_BACKOFF_CAP_MS = 5 * 60_000;

export interface NoticeSenderDeps {
  notices: NoticeStore;
  subscribers: Pick<SubscriberStore, 'get'>;
  renderer: Pick<EmailRenderer, 'confirm' | 'welcome' | 'theEnd'>;
  transport: Pick<MailTransport, 'send' | 'sendRaw'>;
  ids: Pick<MessageIds, 'notice'>;
  /** Addresses a filled email to one reader with the list's headers. */
  address(filled: FilledEmail, to: string, unsubscribeUrl: string, messageId: string, kind: NoticeKind): OutgoingMail;
  /** Notices composed once per kind and filled per reader, for transports that take built messages. */
  noticeMail?: Pick<NoticeMail, 'template'>;
  config: {
    delivery: Pick<Config['delivery'], 'backoffBaseMs' | 'backoffMaxMs'>;
    subscribe: Pick<Config['subscribe'], 'tokenTtlHours'>;
    mail: Pick<Config['mail'], 'maxConnections'>;
  };
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  clock?: () => Date;
}

/** Who each kind is for: a notice to a reader who left (or confirmed meanwhile) is dropped. */
const WANTS: Record<NoticeKind, Subscriber['status']> = { confirm: 'pending', welcome: 'active', 'the-end': 'active' };

export class NoticeSender {
  private running = false;
  private pumping: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: NoticeSenderDeps) {}

  private now(): Date {
    return this.deps.clock?.() ?? new Date();
  }

  /** Queues a confirmation email carrying this link. Call inside the transaction that issued its token. */
  confirm(sub: Subscriber, confirmUrl: string): void {
    this.queue(sub, 'confirm', confirmUrl);
  }

  welcome(sub: Subscriber): void {
    this.queue(sub, 'welcome');
  }

  /** Queues "The End"; false when this reader was owed it already. */
  theEnd(sub: Subscriber): boolean {
    return this.queue(sub, 'the-end');
  }

  private queue(sub: Subscriber, kind: NoticeKind, confirmUrl?: string): boolean {
    const added = this.deps.notices.enqueue({
      subscriberId: sub.id,
      kind,
      confirmUrl,
      messageId: this.deps.ids.notice(kind, randomBytes(9).toString('base64url')),
      at: this.now().toISOString(),
    });
    // After the current turn: the HTTP answer goes out before any rendering or SMTP work.
    if (added) setImmediate(() => this.kick());
    return added;
  }

  /** Keeps sending in the background (serve): due rows now, later ones when they fall due. */
  start(): void {
    const back = this.deps.notices.reclaimAbandoned();
    if (back > 0)
      this.deps.log.info(
        { notices: back },
        `${back} email(s) were being sent when a previous process died; sending them again (same Message-ID)`,
      );
    this.running = true;
    this.kick();
  }

  /** Resolves once the notices queued so far have been handed over, or wait for a retry (tests, shutdown). */
  async settled(): Promise<void> {
    // After the kick that queueing scheduled.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.pumping) await this.pumping;
  }

  /** Sends every notice due now, then returns (a CLI run that queued "The End"). */
  async drain(): Promise<void> {
    await this.pumping;
    await this.pump();
  }

  /**
   * Stops taking rows and waits up to `graceMs` for the emails on the wire. Rows not yet
   * taken stay queued; a row still on the wire at the deadline keeps its lease and is
   * re-sent (same Message-ID) once the lease runs out.
   */
  async stop(graceMs: number): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([this.pumping, new Promise((resolve) => (timeout = setTimeout(resolve, graceMs)))]);
    clearTimeout(timeout);
  }

  private kick(): void {
    if (!this.running) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.pumping = this.pump().finally(() => {
      this.pumping = undefined;
      if (this.again) {
        this.again = false;
        this.kick();
      } else this.arm();
    });
  }

  private arm(): void {
    if (!this.running) return;
    const next = this.deps.notices.nextDueAt();
    const wait = next ? Math.min(IDLE_POLL_MS, Math.max(0, next.getTime() - this.now().getTime())) : IDLE_POLL_MS;
    this.timer = setTimeout(() => this.kick(), wait);
    this.timer.unref();
  }

  private async pump(): Promise<void> {
    const batchSize = Math.max(2, this.deps.config.mail.maxConnections);
    for (;;) {
      if (this.pumping && !this.running) return;
      const batch = this.deps.notices.claimDue(this.now(), LEASE_MS, batchSize);
      if (batch.length === 0) return;
      await Promise.all(batch.map((n) => this.deliver(n)));
    }
  }

  private async deliver(n: Notice): Promise<void> {
    const { notices, subscribers } = this.deps;
    const sub = subscribers.get(n.subscriberId);
    if (!sub || sub.status !== WANTS[n.kind]) {
      notices.markFailed(n, `not sent: the reader is ${sub?.status ?? 'gone'}`);
      return;
    }
    try {
      await this.send(n, sub);
    } catch (err) {
      this.failed(n, err);
      return;
    }
    notices.markSent(n, this.now().toISOString());
  }

  /**
   * Where the transport takes built messages, the kind's email is composed once and each
   * reader's bytes are the template filled (notice-mail.ts); else nodemailer composes it.
   */
  private async send(n: Notice, sub: Subscriber): Promise<void> {
    const { renderer, transport, noticeMail } = this.deps;
    const prepared: PreparedEmail = await (n.kind === 'confirm'
      ? renderer.confirm()
      : n.kind === 'welcome'
        ? renderer.welcome()
        : renderer.theEnd());
    const template = transport.sendRaw && noticeMail ? await noticeMail.template(prepared, n.kind) : undefined;
    // The confirmation link is this notice's own; the rest are the reader's.
    const own = { confirmUrl: n.confirmUrl ?? '' };
    if (template) {
      const raw = template.bytesFor(sub, { messageId: n.messageId, date: dateHeader(new Date()) }, own);
      await transport.sendRaw!(sub.email, raw, n.messageId);
      return;
    }
    const { email, unsubscribeUrl } = prepared.fillFor(sub, own);
    const mail = this.deps.address(email, sub.email, unsubscribeUrl, n.messageId, n.kind);
    await transport.send(mail);
  }

  /**
   * A refusal of this address or message is final. Anything else (4xx, an outage, and
   * also a policy or session refusal the operator can fix) is tried again with backoff,
   * for as long as the notice is worth sending.
   */
  private failed(n: Notice, err: unknown): void {
    const { notices, config, log } = this.deps;
    const f = classify(err);
    if (f.kind === 'permanent' && !f.policy) {
      notices.markFailed(n, f.message);
      log.warn({ notice: n.id, subscriber: n.subscriberId, kind: n.kind }, `${n.kind} email refused: ${f.message}`);
      return;
    }
    const lifetime = n.kind === 'confirm' ? config.subscribe.tokenTtlHours * 3_600_000 : NOTICE_LIFETIME_MS;
    const now = this.now();
    const at = new Date(
      now.getTime() +
        backoffMs(
          n.attempts,
          config.delivery.backoffBaseMs,
          Math.max(config.delivery.backoffMaxMs, MIN_BACKOFF_CAP_MS),
        ),
    );
    if (at.getTime() > Date.parse(n.createdAt) + lifetime) {
      notices.markFailed(n, `gave up after ${n.attempts} attempts: ${f.message}`);
      log.warn(
        { notice: n.id, subscriber: n.subscriberId, kind: n.kind },
        `${n.kind} email abandoned after ${n.attempts} attempts: ${f.message}`,
      );
      return;
    }
    notices.retryAt(n, f.message, at);
    log.info(
      { notice: n.id, subscriber: n.subscriberId, kind: n.kind, retryAt: at.toISOString() },
      `${n.kind} email not sent yet (${f.message}); will retry`,
    );
  }
}
