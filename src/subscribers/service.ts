// Double opt-in, confirmation and unsubscribe rules, independent of HTTP.
// `request` answers the same way for every address (no enumeration): it only queues the
// email owed (in the notices ledger, in the same transaction as the token), and the
// sender picks it up after the answer, so a known address does not take longer than a new one.
import type { Config } from '../config.ts';
import { Links } from '../links.ts';
import type { Store } from '../store/index.ts';
import type { Subscriber } from '../store/subscribers.ts';
import { normalizeEmail } from './address.ts';

/** Queues the emails a subscription owes; called inside the transaction that owes them. */
export interface Notices {
  confirm(sub: Subscriber, confirmUrl: string): void;
  welcome(sub: Subscriber): void;
  /** Resolves once what was queued so far has been handed over (or waits for a retry). */
  settled(): Promise<void>;
}

export interface Logger {
  info(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export type ConfirmOutcome =
  { ok: true; subscriber: Subscriber; alreadyActive: boolean } | { ok: false; reason: 'unknown' | 'used' | 'expired' };

export class Subscriptions {
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly deps: {
      store: Store;
      config: Config;
      links: Links;
      notices: Notices;
      log: Logger;
      /** Called once a subscriber becomes active (paced mode sends installment 1 from here). */
      onActivated?: (sub: Subscriber) => Promise<void>;
    },
  ) {}

  /** Validates the address (throws InvalidEmailError) and queues whatever mail is due. */
  request(emailInput: unknown, ip: string | null): void {
    const email = normalizeEmail(emailInput);
    const { store } = this.deps;
    store.db.transaction(() => this.requestIn(email, ip))();
  }

  private requestIn(email: string, ip: string | null): void {
    const { store, config } = this.deps;
    const existing = store.subscribers.byEmail(email);
    const sub = existing ?? store.subscribers.create({ email, status: 'pending', consentIp: ip });
    // Coming back after leaving is a new consent and gets its confirmation at once, even
    // minutes after the last email; an outsider cannot unsubscribe or bounce an address to repeat it.
    const renewed = sub.status === 'unsubscribed' || sub.status === 'bounced';
    if (renewed) store.subscribers.renewConsent(sub.id, ip);
    const fresh = store.subscribers.get(sub.id)!;
    if (existing !== undefined && !renewed && this.recentlyMailed(fresh)) {
      this.deps.log.info(
        { subscriber: fresh.id },
        'subscribe request for a recently mailed address; not mailing again',
      );
      return;
    }
    store.subscribers.noteNoticeSent(fresh.id);
    if (fresh.status === 'active') this.deps.notices.welcome(fresh);
    else
      this.deps.notices.confirm(
        fresh,
        this.deps.links.confirm(store.tokens.issue(fresh.id, config.subscribe.tokenTtlHours)),
      );
  }

  /**
   * Mailed within the quiet interval, and that email is on its way or went out: asking
   * again sends nothing. A notice that was refused or abandoned does not hold a retry back.
   */
  private recentlyMailed(sub: Subscriber): boolean {
    const { config, store } = this.deps;
    if (sub.noticeSentAt === null || store.notices.latestFor(sub.id)?.status === 'failed') return false;
    const quietMs =
      sub.status === 'active'
        ? config.subscribe.resendIntervalHours * 3_600_000
        : config.subscribe.confirmResendMinutes * 60_000;
    return Date.now() - Date.parse(sub.noticeSentAt) < quietMs;
  }

  /** For the GET confirm page: is this token usable? Changes nothing. */
  checkConfirm(token: unknown): ConfirmOutcome {
    if (typeof token !== 'string' || token.length > 200) return { ok: false, reason: 'unknown' };
    const check = this.deps.store.tokens.check(token);
    if (!check.ok) return check;
    const subscriber = this.deps.store.subscribers.get(check.subscriberId);
    if (!subscriber) return { ok: false, reason: 'unknown' };
    return { ok: true, subscriber, alreadyActive: subscriber.status === 'active' };
  }

  confirm(token: unknown, ip: string | null): ConfirmOutcome {
    const checked = this.checkConfirm(token);
    if (!checked.ok) return checked;
    const { store } = this.deps;
    const outcome = store.db.transaction(() => {
      if (!store.tokens.consume(token as string)) return undefined;
      const activated = store.subscribers.activate(checked.subscriber.id, ip);
      const subscriber = store.subscribers.get(checked.subscriber.id)!;
      if (activated) this.deps.notices.welcome(subscriber);
      return { activated, subscriber };
    })();
    if (!outcome) return { ok: false, reason: 'used' };
    const { activated, subscriber } = outcome;
    if (activated) {
      this.deps.log.info({ subscriber: subscriber.id }, 'subscriber confirmed');
      if (this.deps.onActivated)
        this.background(() => this.deps.onActivated!(subscriber), subscriber, 'first installment');
    }
    return { ok: true, subscriber, alreadyActive: !activated };
  }

  /** The subscriber a signed link names, if the signature holds. */
  bySignedToken(purpose: 'unsubscribe' | 'next', token: unknown): Subscriber | undefined {
    const id = Links.idOf(token);
    if (id === null) return undefined;
    const sub = this.deps.store.subscribers.get(id);
    return sub && this.deps.links.verify(purpose, token as string, sub) ? sub : undefined;
  }

  unsubscribe(token: unknown): Subscriber | undefined {
    const sub = this.bySignedToken('unsubscribe', token);
    if (!sub) return undefined;
    if (this.deps.store.subscribers.unsubscribe(sub.id))
      this.deps.log.info({ subscriber: sub.id }, 'subscriber unsubscribed');
    return this.deps.store.subscribers.get(sub.id);
  }

  /** Resolves when every background job started so far has settled (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    await this.deps.notices.settled();
  }

  private background(work: () => Promise<void>, sub: Subscriber, what: string): void {
    // setImmediate: the HTTP answer goes out before any rendering or SMTP work starts.
    const p = new Promise<void>((resolve) => setImmediate(resolve))
      .then(work)
      .catch((err: unknown) =>
        this.deps.log.error({ subscriber: sub.id, err: String(err) }, `sending ${what} email failed`),
      )
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }
}
