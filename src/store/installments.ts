import type { Block, Installment } from '../story/types.ts';
import { nowIso, type DB } from './db.ts';

export interface StoredInstallment extends Installment {
  /** Set once the text was sent to anyone or published: from then on it never changes. */
  frozenAt: string | null;
  publishedAt: string | null;
}

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

export class InstallmentStore {
  constructor(private readonly db: DB) {}

  all(): StoredInstallment[] {
    return (this.db.prepare('SELECT * FROM installments ORDER BY number').all() as Row[]).map(fromRow);
  }

  get(number: number): StoredInstallment | undefined {
    const row = this.db.prepare('SELECT * FROM installments WHERE number = ?').get(number) as Row | undefined;
    return row && fromRow(row);
  }

  frozen(): StoredInstallment[] {
    return (this.db.prepare('SELECT * FROM installments WHERE frozen_at IS NOT NULL ORDER BY number').all() as Row[]).map(fromRow);
  }

  published(): StoredInstallment[] {
    return (this.db.prepare('SELECT * FROM installments WHERE published_at IS NOT NULL ORDER BY number').all() as Row[]).map(fromRow);
  }

  count(): { total: number; published: number } {
    return this.db
      .prepare('SELECT count(*) AS total, count(published_at) AS published FROM installments')
      .get() as { total: number; published: number };
  }

  /** Swaps the unfrozen tail for a fresh split; frozen rows are never touched. */
  replaceUnfrozen(next: Installment[]): void {
    const insert = this.db.prepare(
      `INSERT INTO installments (number, title, blocks_json, body_hash, word_count, minutes, first_block, block_count, created_at)
       VALUES (@number, @title, @blocks, @hash, @wordCount, @minutes, @firstBlock, @blockCount, @createdAt)`,
    );
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM installments WHERE frozen_at IS NULL').run();
      const createdAt = nowIso();
      for (const i of next) insert.run({ ...i, blocks: JSON.stringify(i.blocks), createdAt });
    })();
  }

  /** Marks an installment published (and so frozen); returns false when it already was (its date is kept). */
  markPublished(number: number, at = nowIso()): boolean {
    return (
      this.db
        .prepare('UPDATE installments SET published_at = ?, frozen_at = coalesce(frozen_at, ?) WHERE number = ? AND published_at IS NULL')
        .run(at, at, number).changes === 1
    );
  }

  /** Freezes an installment before its first delivery (paced readers may get it before it is public). */
  freeze(number: number, at = nowIso()): void {
    this.db.prepare('UPDATE installments SET frozen_at = ? WHERE number = ? AND frozen_at IS NULL').run(at, number);
  }

  lastPublishedAt(): string | null {
    const row = this.db.prepare('SELECT max(published_at) AS at FROM installments').get() as { at: string | null };
    return row.at;
  }
}
