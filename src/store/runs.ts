import { hostname } from 'node:os';
import { nowIso, type DB } from './db.ts';
import type { MetaStore } from './meta.ts';
import { processAlive } from './process.ts';

export type RunKind = 'manual' | 'scheduled' | 'catch-up' | 'on-demand';
export type RunStatus = 'running' | 'paused' | 'finished' | 'failed';

export interface RunCounts {
  planned: number;
  sent: number;
  failed: number;
  retried: number;
  skipped: number;
  possibleDuplicates: number;
}

export interface Run {
  id: number;
  kind: RunKind;
  status: RunStatus;
  startedAt: string;
  finishedAt: string | null;
  counts: RunCounts;
  /** What the run sends, e.g. {"mode":"broadcast","installment":3}, so --resume continues the same thing. */
  note: string | null;
  /** Why it paused. */
  reason: string | null;
  /** Paused for the operator to fix something: the schedule does not resume it by itself. */
  needsOperator: boolean;
}

interface Row {
  id: number;
  kind: RunKind;
  status: RunStatus;
  started_at: string;
  finished_at: string | null;
  counts_json: string;
  note: string | null;
  reason: string | null;
  needs_operator: number;
}

const fromRow = (r: Row): Run => ({
  id: r.id,
  kind: r.kind,
  status: r.status,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  counts: JSON.parse(r.counts_json) as RunCounts,
  note: r.note,
  reason: r.reason,
  needsOperator: r.needs_operator === 1,
});

export interface LockHolder {
  owner: string;
  pid: number;
  host: string;
  since: string;
  heartbeat: number;
}

const LOCK_KEY = 'send_lock';
/** Holders heartbeat every few seconds; one silent this long belongs to a dead process. */
export const LOCK_STALE_MS = 60_000;

const isDead = (holder: LockHolder, staleMs: number): boolean =>
  (holder.host === hostname() && !processAlive(holder.pid)) || Date.now() - holder.heartbeat > staleMs;

export class RunStore {
  private readonly holds;
  private readonly latestStory;
  private readonly insert;
  private readonly one;
  private readonly finishStmt;
  private readonly reopenStmt;
  private readonly pauseStmt;
  private readonly withFailures;
  private readonly latestStmt;
  private readonly unfinishedStmt;
  private readonly beat;
  private readonly release;

  constructor(
    private readonly db: DB,
    /** The lock is a meta row: read and written as any other, taken and released on conditions of its own. */
    private readonly meta: Pick<MetaStore, 'get' | 'set'>,
  ) {
    this.latestStory = db.prepare<[], Row>(
      `SELECT * FROM runs WHERE kind != 'on-demand' AND json_extract(note, '$.due') IS NULL ORDER BY id DESC LIMIT 1`,
    );
    this.holds = db.prepare<[string, string], { 1: number }>(
      `SELECT 1 FROM meta WHERE key = ? AND json_extract(value, '$.owner') = ?`,
    );
    this.insert = db.prepare<[RunKind, string, string, string]>(
      `INSERT INTO runs (kind, status, started_at, counts_json, note) VALUES (?, 'running', ?, ?, ?)`,
    );
    this.one = db.prepare<[number], Row>('SELECT * FROM runs WHERE id = ?');
    this.finishStmt = db.prepare<[string, string, string, string | null, number, number]>(
      'UPDATE runs SET status = ?, finished_at = ?, counts_json = ?, reason = ?, needs_operator = ? WHERE id = ?',
    );
    this.reopenStmt = db.prepare<[number]>(
      `UPDATE runs SET status = 'running', finished_at = NULL, reason = NULL, needs_operator = 0 WHERE id = ?`,
    );
    this.pauseStmt = db.prepare<[string, number]>(
      `UPDATE runs SET status = 'paused', reason = ?, needs_operator = 0 WHERE id = ?`,
    );
    this.withFailures = db.prepare<[], Row>(
      `SELECT * FROM runs
       WHERE kind != 'on-demand' AND id IN (SELECT run_id FROM deliveries WHERE status = 'failed')
       ORDER BY id DESC LIMIT 1`,
    );
    this.latestStmt = db.prepare<[], Row>(`SELECT * FROM runs WHERE kind != 'on-demand' ORDER BY id DESC LIMIT 1`);
    this.unfinishedStmt = db.prepare<[], Row>(
      `SELECT * FROM runs WHERE status IN ('paused', 'running') AND kind != 'on-demand' ORDER BY id DESC LIMIT 1`,
    );
    this.beat = db.prepare<[number, string, string]>(
      `UPDATE meta SET value = json_set(value, '$.heartbeat', ?) WHERE key = ? AND json_extract(value, '$.owner') = ?`,
    );
    this.release = db.prepare<[string, string]>(
      `DELETE FROM meta WHERE key = ? AND json_extract(value, '$.owner') = ?`,
    );
  }

  start(kind: RunKind, note: string, counts: RunCounts): Run {
    const info = this.insert.run(kind, nowIso(), JSON.stringify(counts), note);
    return this.get(Number(info.lastInsertRowid))!;
  }

  get(id: number): Run | undefined {
    const row = this.one.get(id);
    return row && fromRow(row);
  }

  finish(
    id: number,
    status: Exclude<RunStatus, 'running'>,
    counts: RunCounts,
    reason: string | null = null,
    needsOperator = false,
  ): void {
    this.finishStmt.run(status, nowIso(), JSON.stringify(counts), reason, needsOperator ? 1 : 0, id);
  }

  /** Reopens a paused or crashed run for --resume. */
  reopen(id: number): void {
    this.reopenStmt.run(id);
  }

  /** Marks a run paused for --resume (failed deliveries queued again). */
  pause(id: number, reason: string): void {
    this.pauseStmt.run(reason, id);
  }

  /** The newest run with failed deliveries, for --retry-failed. */
  latestWithFailures(): Run | undefined {
    const row = this.withFailures.get();
    return row && fromRow(row);
  }

  /**
   * The newest run on the story's calendar: runs of readers' own calendars (note.due) are
   * left out, as they say nothing about when the shared calendar last moved.
   */
  latestOfStory(): Run | undefined {
    const row = this.latestStory.get();
    return row && fromRow(row);
  }

  latest(): Run | undefined {
    const row = this.latestStmt.get();
    return row && fromRow(row);
  }

  /** The newest run that did not finish: paused by an outage, or left `running` by a crash. */
  unfinished(): Run | undefined {
    const row = this.unfinishedStmt.get();
    return row && fromRow(row);
  }

  /**
   * Takes the single-sender lock, or returns who holds it. A holder whose process is gone
   * (same host) or whose heartbeat is older than staleMs is considered dead.
   */
  acquireLock(owner: string, staleMs = LOCK_STALE_MS): { ok: true } | { ok: false; holder: LockHolder } {
    const take = this.db.transaction((): { ok: true } | { ok: false; holder: LockHolder } => {
      const value = this.meta.get(LOCK_KEY);
      if (value) {
        const holder = JSON.parse(value) as LockHolder;
        if (holder.owner !== owner && !isDead(holder, staleMs)) return { ok: false, holder };
      }
      const mine: LockHolder = { owner, pid: process.pid, host: hostname(), since: nowIso(), heartbeat: Date.now() };
      this.meta.set(LOCK_KEY, JSON.stringify(mine));
      return { ok: true };
    });
    return take.immediate();
  }

  /** Is the lock still this owner's? (checked before each claim: a stalled sender may have lost it) */
  holdsLock(owner: string): boolean {
    return this.holds.get(LOCK_KEY, owner) !== undefined;
  }

  heartbeat(owner: string): void {
    this.beat.run(Date.now(), LOCK_KEY, owner);
  }

  releaseLock(owner: string): void {
    this.release.run(LOCK_KEY, owner);
  }

  /** Who holds the lock; `dead` when a crashed holder left it behind (the next sender takes it over). */
  lockHolder(staleMs = LOCK_STALE_MS): (LockHolder & { dead: boolean }) | undefined {
    const value = this.meta.get(LOCK_KEY);
    if (!value) return undefined;
    const holder = JSON.parse(value) as LockHolder;
    return { ...holder, dead: isDead(holder, staleMs) };
  }
}
