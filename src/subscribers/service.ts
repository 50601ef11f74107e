// Double opt-in, confirmation and unsubscribe rules, independent of HTTP.
// `request` answers the same way for every address (no enumeration): all mail goes out in
// the background after the answer, so a known address does not take longer than a new one.
import type { Config } from '../config.ts';
import { Links } from '../links.ts';
import type { Store } from '../store/index.ts';
import type { Subscriber } from '../store/subscribers.ts';
import { normalizeEmail } from './address.ts';

export interface Notices {
  confirm(sub: Subscriber, confirmUrl: string): Promise<void>;
  welcome(sub: Subscriber): Promise<void>;
}

export interface Logger {
  info(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export type ConfirmOutcome =
  | { ok: true; subscriber: Subscriber; alreadyActive: boolean }
  | { ok: false; reason: 'unknown' | 'used' | 'expired' };

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

  /** Validates the address (throws InvalidEmailError) and starts whatever mail is due. */
  request(emailInput: unknown, ip: string | null): void {
    const email = normalizeEmail(emailInput);
    const { store, config } = this.deps;
    const existing = store.subscribers.byEmail(email);
    const sub = existing ?? store.subscribers.create({ email, status: 'pending', consentIp: ip });
    // Coming back after leaving is a new consent and gets its confirmation at once, even
    // minutes after the last email; an outsider cannot unsubscribe or bounce an address to repeat it.
    const renewed = sub.status === 'unsubscribed' || sub.status === 'bounced';
    if (renewed) store.subscribers.renewConsent(sub.id, ip);
    const fresh = store.subscribers.get(sub.id)!;
    const quietMs = fresh.status === 'active' ? config.subscribe.resendIntervalHours * 3_600_000 : config.subscribe.confirmResendMinutes * 60_000;
    const recentlyMailed = existing !== undefined && !renewed && fresh.noticeSentAt !== null && Date.now() - Date.parse(fresh.noticeSentAt) < quietMs;
    if (recentlyMailed) {
      this.deps.log.info({ subscriber: fresh.id }, 'subscribe request for a recently mailed address; not mailing again');
      return;
    }
    store.subscribers.noteNoticeSent(fresh.id);
    if (fresh.status === 'active') {
      this.background(() => this.deps.notices.welcome(fresh), fresh, 'welcome (already subscribed)');
    } else {
      const token = store.tokens.issue(fresh.id, config.subscribe.tokenTtlHours);
      this.background(() => this.deps.notices.confirm(fresh, this.deps.links.confirm(token)), fresh, 'confirmation');
    }
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

  async confirm(token: unknown, ip: string | null): Promise<ConfirmOutcome> {
    const checked = this.checkConfirm(token);
    if (!checked.ok) return checked;
    const { store } = this.deps;
    if (!store.tokens.consume(token as string)) return { ok: false, reason: 'used' };
    const activated = store.subscribers.activate(checked.subscriber.id, ip);
    const subscriber = store.subscribers.get(checked.subscriber.id)!;
    if (activated) {
      this.deps.log.info({ subscriber: subscriber.id }, 'subscriber confirmed');
      this.background(() => this.deps.notices.welcome(subscriber), subscriber, 'welcome');
      if (this.deps.onActivated) this.background(() => this.deps.onActivated!(subscriber), subscriber, 'first installment');
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
    if (this.deps.store.subscribers.unsubscribe(sub.id)) this.deps.log.info({ subscriber: sub.id }, 'subscriber unsubscribed');
    return this.deps.store.subscribers.get(sub.id);
  }

  /** Resolves when every background email started so far has been handed over (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private background(work: () => Promise<void>, sub: Subscriber, what: string): void {
    // setImmediate: the HTTP answer goes out before any rendering or SMTP work starts.
    const p = new Promise<void>((resolve) => setImmediate(resolve))
      .then(work)
      .catch((err: unknown) => this.deps.log.error({ subscriber: sub.id, err: String(err) }, `sending ${what} email failed`))
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }
}
