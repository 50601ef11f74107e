import { DeliveryStore } from './deliveries.ts';
import { FeedbackStore } from './feedback.ts';
import { InstallmentStore } from './installments.ts';
import { MetaStore } from './meta.ts';
import { NoticeStore } from './notices.ts';
import { SubscriberStore } from './subscribers.ts';
import { RunStore } from './runs.ts';
import { TokenStore } from './tokens.ts';
import { openDb, type DB } from './db.ts';

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
    this.runs = new RunStore(db);
    this.feedback = new FeedbackStore(db);
  }

  static open(file: string): Store {
    return new Store(openDb(file));
  }

  /** Throws when the database cannot answer a query. */
  ping(): void {
    this.db.prepare('SELECT 1').get();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
