// What the subscriber list no longer needs goes, on a timer, while `serve` runs: confirmation
// tokens long expired, and requests never confirmed within subscribe.pendingDays (a stranger
// may have typed the address; keeping it, with its consent record, has no purpose).
import type { Logger } from 'pino';
import type { SubscriberStore } from '../store/subscribers.ts';
import type { TokenStore } from '../store/tokens.ts';

export interface HousekeepingStore {
  tokens: Pick<TokenStore, 'purgeExpired'>;
  subscribers: Pick<SubscriberStore, 'purgeStalePending'>;
}

export interface Purged {
  tokens: number;
  /** Never-confirmed requests deleted. */
  pending: number;
  /** Former readers whose unconfirmed request to come back lapsed: unsubscribed again. */
  lapsed: number;
}

const HOUR = 3_600_000;

export class Housekeeping {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: {
      store: HousekeepingStore;
      pendingDays: number;
      log: Pick<Logger, 'info' | 'debug' | 'error'>;
      clock?: () => Date;
      everyMs?: number;
    },
  ) {}

  /** One pass; tokens first, so the count includes those of readers purged after them. */
  run(): Purged {
    const now = (this.deps.clock ?? (() => new Date()))();
    const tokens = this.deps.store.tokens.purgeExpired(now);
    const before = new Date(now.getTime() - this.deps.pendingDays * 24 * HOUR).toISOString();
    const { pending, lapsed } = this.deps.store.subscribers.purgeStalePending(before, now.toISOString());
    const purged = { tokens, pending, lapsed };
    const line =
      `housekeeping purged ${tokens} expired token(s) and ${pending} unconfirmed reader(s); ` +
      `${lapsed} unconfirmed comeback(s) set back to unsubscribed`;
    if (tokens + pending + lapsed > 0) this.deps.log.info(purged, line);
    else this.deps.log.debug(purged, line);
    return purged;
  }

  /** Runs now, then every hour (or `everyMs`); the timer never keeps the process alive. */
  start(): void {
    this.tick();
    this.timer ??= setInterval(() => this.tick(), this.deps.everyMs ?? HOUR).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  // A failed pass (disk full, busy database) is logged; the next one tries again.
  private tick(): void {
    try {
      this.run();
    } catch (err) {
      this.deps.log.error({ err }, 'housekeeping failed; the next pass tries again');
    }
  }
}
