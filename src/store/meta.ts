import type { DB } from './db.ts';

/** Small key/value facts the app keeps across runs (generated secret, last scheduled tick…). */
export class MetaStore {
  constructor(private readonly db: DB) {}

  get(key: string): string | undefined {
    const row = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value;
  }

  set(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  /** Stores `make()` under key unless a value is there already; returns the stored value either way. */
  getOrInit(key: string, make: () => string): string {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING').run(key, make());
    return this.get(key)!;
  }

  delete(key: string): void {
    this.db.prepare('DELETE FROM meta WHERE key = ?').run(key);
  }
}
