import { DeliveryStore } from './deliveries.ts';
import { FeedbackStore } from './feedback.ts';
import { InstallmentStore } from './installments.ts';
import { MetaStore } from './meta.ts';
import { NoticeStore } from './notices.ts';
import { SubscriberStore } from './subscribers.ts';
import { RunStore } from './runs.ts';
import { TokenStore } from './tokens.ts';
import { openDb, quickCheck, type DB } from './db.ts';

/** Every table's access object over one connection. */
export class Store {
  readonly installments: InstallmentStore;
  readonly meta: MetaStore;
  readonly subscribers: SubscriberStore;
  readonly tokens: TokenStore;
  readonly notices: NoticeStore;
  readonly deliveries: DeliveryStore;
  readonly runs: RunStore;
  readonly feedback: FeedbackStore;

  constructor(readonly db: DB) {
    this.installments = new InstallmentStore(db);
    this.meta = new MetaStore(db);
    this.subscribers = new SubscriberStore(db);
    this.tokens = new TokenStore(db);
    this.notices = new NoticeStore(db);
    this.deliveries = new DeliveryStore(db);
    this.runs = new RunStore(db, this.meta);
    this.feedback = new FeedbackStore(db);
  }

  static open(file: string): Store {
    return new Store(openDb(file));
  }

  /** Null when SQLite finds the file sound, else what is wrong. Reads the whole file: cache the answer. */
  checkIntegrity(): string | null {
    return quickCheck(this.db);
  }

  /** Throws when the database cannot take a write that needs a fresh page (disk full, read-only, I/O error). */
  probeWrite(at: Date): void {
    this.meta.probeWrite(at);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
