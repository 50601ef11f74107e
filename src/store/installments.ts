import type { Block, Installment, StoredInstallment } from '../story/types.ts';

export type { StoredInstallment };
import { nowIso, type DB } from './db.ts';

interface Row {
  number: number;
  title: string;
  blocks_json: string;
  body_hash: string;
  word_count: number;
  minutes: number;
  first_block: number;
  block_count: number;
  frozen_at: string | null;
  published_at: string | null;
}

const fromRow = (r: Row): StoredInstallment => ({
  number: r.number,
  title: r.title,
  blocks: JSON.parse(r.blocks_json) as Block[],
  hash: r.body_hash,
  wordCount: r.word_count,
  minutes: r.minutes,
  firstBlock: r.first_block,
  blockCount: r.block_count,
  frozenAt: r.frozen_at,
  publishedAt: r.published_at,
});

/**
 * What the published part of the story is at a moment: it changes when an installment is
 * published or the story re-split. Readers of the web and the feeds check it per request.
 */
export interface PublishedState {
  /** Equal keys, equal published installments. */
  key: string;
  total: number;
  published: number;
}

export class InstallmentStore {
  private readonly allStmt;
  private readonly getStmt;
  private readonly frozenStmt;
  private readonly publishedStmt;
  private readonly countStmt;
  private readonly lastPublishedStmt;
  private readonly insertStmt;
  private readonly deleteUnfrozenStmt;
  private readonly publishStmt;
  private readonly freezeStmt;
  private readonly dataVersionStmt;
  /** The state last read, and the connection-independent version it was read at. */
  private state: { version: number; value: PublishedState } | undefined;

  constructor(private readonly db: DB) {
    this.allStmt = db.prepare<[], Row>('SELECT * FROM installments ORDER BY number');
    this.getStmt = db.prepare<[number], Row>('SELECT * FROM installments WHERE number = ?');
    this.frozenStmt = db.prepare<[], Row>('SELECT * FROM installments WHERE frozen_at IS NOT NULL ORDER BY number');
    this.publishedStmt = db.prepare<[], Row>(
      'SELECT * FROM installments WHERE published_at IS NOT NULL ORDER BY number',
    );
    this.countStmt = db.prepare<[], { total: number; published: number }>(
      'SELECT count(*) AS total, count(published_at) AS published FROM installments',
    );
    this.lastPublishedStmt = db.prepare<[], { at: string | null }>('SELECT max(published_at) AS at FROM installments');
    this.insertStmt = db.prepare(
      `INSERT INTO installments
         (number, title, blocks_json, body_hash, word_count, minutes, first_block, block_count, created_at)
       VALUES (@number, @title, @blocks, @hash, @wordCount, @minutes, @firstBlock, @blockCount, @createdAt)`,
    );
    this.deleteUnfrozenStmt = db.prepare('DELETE FROM installments WHERE frozen_at IS NULL');
    this.publishStmt = db.prepare<[string, string, number]>(
      `UPDATE installments SET published_at = ?, frozen_at = coalesce(frozen_at, ?)
       WHERE number = ? AND published_at IS NULL`,
    );
    this.freezeStmt = db.prepare<[string, number]>(
      'UPDATE installments SET frozen_at = ? WHERE number = ? AND frozen_at IS NULL',
    );
    // Changes whenever another connection (a `send` in its own process) commits; this
    // connection's own writes are noted where they are made.
    this.dataVersionStmt = db.prepare<[], number>('PRAGMA data_version').pluck();
  }

  all(): StoredInstallment[] {
    return this.allStmt.all().map(fromRow);
  }

  get(number: number): StoredInstallment | undefined {
    const row = this.getStmt.get(number);
    return row && fromRow(row);
  }

  frozen(): StoredInstallment[] {
    return this.frozenStmt.all().map(fromRow);
  }

  published(): StoredInstallment[] {
    return this.publishedStmt.all().map(fromRow);
  }

  count(): { total: number; published: number } {
    return this.countStmt.get()!;
  }

  /**
   * The published state, read again only when the database changed since the last look:
   * per request this costs one pragma, not a query of the table.
   */
  publishedState(): PublishedState {
    const version = this.dataVersionStmt.get()!;
    if (this.state?.version !== version) {
      const { total, published } = this.count();
      this.state = {
        version,
        value: { key: `${total}|${published}|${this.lastPublishedAt() ?? ''}`, total, published },
      };
    }
    return this.state.value;
  }

  /** Swaps the unfrozen tail for a fresh split; frozen rows are never touched. */
  replaceUnfrozen(next: Installment[]): void {
    this.db.transaction(() => {
      this.deleteUnfrozenStmt.run();
      const createdAt = nowIso();
      for (const i of next) this.insertStmt.run({ ...i, blocks: JSON.stringify(i.blocks), createdAt });
    })();
    this.state = undefined;
  }

  /** Marks an installment published (and so frozen); returns false when it already was (its date is kept). */
  markPublished(number: number, at = nowIso()): boolean {
    const changed = this.publishStmt.run(at, at, number).changes === 1;
    if (changed) this.state = undefined;
    return changed;
  }

  /** Freezes an installment before its first delivery (paced readers may get it before it is public). */
  freeze(number: number, at = nowIso()): void {
    this.freezeStmt.run(at, number);
  }

  lastPublishedAt(): string | null {
    return this.lastPublishedStmt.get()!.at;
  }
}
