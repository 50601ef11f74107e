import type { DB } from './db.ts';

/** Small key/value facts the app keeps across runs (generated secret, last scheduled tick…). */
export class MetaStore {
  private readonly getStmt;
  private readonly setStmt;
  private readonly initStmt;
  private readonly deleteStmt;
  private readonly probeTx;

  constructor(db: DB) {
    this.getStmt = db.prepare('SELECT value FROM meta WHERE key = ?');
    this.setStmt = db.prepare(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    );
    this.initStmt = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING');
    this.deleteStmt = db.prepare('DELETE FROM meta WHERE key = ?');
    const page = '.'.repeat(db.pragma('page_size', { simple: true }) as number);
    this.probeTx = db.transaction((at: string) => {
      this.setStmt.run('health_probe', at);
      this.setStmt.run('health_probe_page', page);
      this.deleteStmt.run('health_probe_page');
    });
  }

  get(key: string): string | undefined {
    const row = this.getStmt.get(key) as { value: string } | undefined;
    return row?.value;
  }

  set(key: string, value: string): void {
    this.setStmt.run(key, value);
  }

  /** Stores `make()` under key unless a value is there already; returns the stored value either way. */
  getOrInit(key: string, make: () => string): string {
    this.initStmt.run(key, make());
    return this.get(key)!;
  }

  delete(key: string): void {
    this.deleteStmt.run(key);
  }

  /**
   * A real write, committed, for health checks: throws (SQLITE_FULL, SQLITE_READONLY,
   * SQLITE_IOERR…) when the database cannot take one. A small update fits in place even
   * when the database can no longer grow, so the probe also takes a fresh page, as a
   * reader's next rows would, and gives it back (it stays free for the next probe or row).
   */
  probeWrite(at: Date): void {
    this.probeTx(at.toISOString());
  }
}
