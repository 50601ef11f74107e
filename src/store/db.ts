// Opens the SQLite file and brings its schema up to date. Migrations are append-only:
// a released migration is never edited, a change is a new entry.
import { closeSync, mkdirSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { UserError } from '../errors.ts';

export type DB = Database.Database;

const MIGRATIONS: string[] = [
  `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );

  CREATE TABLE installments (
    number       INTEGER PRIMARY KEY,
    title        TEXT NOT NULL,
    blocks_json  TEXT NOT NULL,
    body_hash    TEXT NOT NULL,
    word_count   INTEGER NOT NULL,
    minutes      INTEGER NOT NULL,
    first_block  INTEGER NOT NULL,
    block_count  INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    -- frozen: sent to someone or published; its text and number never change again
    frozen_at    TEXT,
    published_at TEXT
  );

  CREATE TABLE subscribers (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'active', 'unsubscribed', 'bounced')),
    created_at    TEXT NOT NULL,
    confirmed_at  TEXT,
    unsubscribed_at TEXT,
    position      INTEGER NOT NULL DEFAULT 0,
    pace          TEXT,
    feed_token    TEXT NOT NULL UNIQUE,
    consent_ip    TEXT,
    consent_at    TEXT,
    confirm_ip    TEXT,
    -- last confirmation/welcome email: bounds how often the subscribe form can mail an address
    notice_sent_at TEXT,
    hard_bounces  INTEGER NOT NULL DEFAULT 0,
    source        TEXT NOT NULL DEFAULT 'web',
    finished_at   TEXT
  );
  CREATE INDEX subscribers_status ON subscribers (status, id);

  CREATE TABLE tokens (
    hash          TEXT PRIMARY KEY,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    purpose       TEXT NOT NULL CHECK (purpose IN ('confirm')),
    expires_at    TEXT NOT NULL,
    used_at       TEXT
  );
  CREATE INDEX tokens_subscriber ON tokens (subscriber_id);

  CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    installment   INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    message_id    TEXT,
    run_id        INTEGER,
    possible_duplicate INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    queued_at     TEXT NOT NULL,
    sent_at       TEXT,
    UNIQUE (subscriber_id, installment)
  );
  CREATE INDEX deliveries_status ON deliveries (status, installment);

  CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('manual', 'scheduled', 'catch-up', 'on-demand')),
    status      TEXT NOT NULL CHECK (status IN ('running', 'paused', 'finished', 'failed')),
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    counts_json TEXT NOT NULL DEFAULT '{}',
    note        TEXT
  );
  `,
  // Going live: durable notices, the circuit breaker's reason, relay feedback (bounces, complaints).
  `
  ALTER TABLE runs ADD COLUMN reason TEXT;
  -- 1: paused for the operator to fix (relay policy, storm of refusals); not resumed by the schedule
  ALTER TABLE runs ADD COLUMN needs_operator INTEGER NOT NULL DEFAULT 0;

  -- why the status is what it is: 'complaint', 'bounce', 'reader', 'author'
  ALTER TABLE subscribers ADD COLUMN status_reason TEXT;

  CREATE INDEX deliveries_message_id ON deliveries (message_id);
  CREATE INDEX deliveries_run ON deliveries (run_id, status);

  -- Confirmation, welcome and "The End": queued before the HTTP answer, sent by a worker,
  -- retried on 4xx, resumed after a crash (a lease that runs out gives the row back).
  CREATE TABLE notices (
    id            INTEGER PRIMARY KEY,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('confirm', 'welcome', 'the-end')),
    status        TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    -- the confirmation link (its token is stored hashed in tokens); erased once sent
    confirm_url   TEXT,
    message_id    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    lease_until   TEXT,
    -- host:pid of the sender holding the lease: a dead one's rows are taken back at once
    lease_owner   TEXT,
    sent_at       TEXT
  );
  CREATE INDEX notices_due ON notices (status, next_attempt_at);
  CREATE INDEX notices_subscriber ON notices (subscriber_id, id);
  CREATE INDEX notices_message_id ON notices (message_id);
  CREATE UNIQUE INDEX notices_the_end ON notices (subscriber_id) WHERE kind = 'the-end';

  -- What relays told us after accepting a message: bounces and spam complaints.
  CREATE TABLE feedback (
    id            INTEGER PRIMARY KEY,
    received_at   TEXT NOT NULL,
    provider      TEXT NOT NULL,
    type          TEXT NOT NULL CHECK (type IN ('bounce', 'soft-bounce', 'complaint')),
    email         TEXT NOT NULL,
    message_id    TEXT,
    subscriber_id INTEGER REFERENCES subscribers (id) ON DELETE SET NULL,
    delivery_id   INTEGER REFERENCES deliveries (id) ON DELETE SET NULL,
    detail        TEXT
  );
  CREATE INDEX feedback_subscriber ON feedback (subscriber_id);
  `,
  // Relays retry a notification until answered 2xx: the provider's own event id (SNS
  // MessageId, Postmark ID) lets a repeat be recognised and counted once.
  `
  ALTER TABLE feedback ADD COLUMN event_id TEXT;
  CREATE UNIQUE INDEX feedback_event ON feedback (provider, event_id, email);
  `,
  // Each reader's own calendar. NULL preferences follow the config's defaults; a reader
  // with an own calendar has next_due_at (the instant of their next delivery), found by
  // the scheduler's frequent ticks through the partial index below.
  `
  -- 'schedule' (the story's own calendar), 'daily', 'weekdays', 'days', 'weekly'
  ALTER TABLE subscribers ADD COLUMN cadence TEXT;
  -- bit mask of weekdays, Sunday = 1
  ALTER TABLE subscribers ADD COLUMN days INTEGER;
  -- minutes after local midnight
  ALTER TABLE subscribers ADD COLUMN send_minute INTEGER;
  ALTER TABLE subscribers ADD COLUMN timezone TEXT;
  -- the local date (YYYY-MM-DD) deliveries start again, and that date's first instant
  ALTER TABLE subscribers ADD COLUMN paused_until TEXT;
  ALTER TABLE subscribers ADD COLUMN paused_until_at TEXT;
  ALTER TABLE subscribers ADD COLUMN next_due_at TEXT;
  CREATE INDEX subscribers_due ON subscribers (next_due_at, id) WHERE status = 'active' AND next_due_at IS NOT NULL;
  -- readers on the config's default calendar not yet given a next delivery time
  CREATE INDEX subscribers_unarmed ON subscribers (id)
    WHERE status = 'active' AND next_due_at IS NULL AND cadence IS NULL;
  `,
];

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');
const START_AFRESH = 'restore it from a backup, or move it away to start afresh';

/**
 * Opens the database, refusing (before any write) a file that would otherwise be taken
 * for a new empty one or fail mid-command: empty, not SQLite, or damaged.
 */
export function openDb(file: string): DB {
  if (file !== ':memory:') {
    refuseUnusableFile(file);
    mkdirSync(path.dirname(file), { recursive: true });
  }
  const db = new Database(file);
  try {
    // Web requests and a send may write at once; wait instead of failing with SQLITE_BUSY.
    db.pragma('busy_timeout = 5000');
    const problem = quickCheck(db);
    if (problem) throw new UserError(`${file}: the database is damaged (${problem}); ${START_AFRESH}`);
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    db.pragma('synchronous = NORMAL');
    migrate(db);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

// A truncated file would open as a brand-new database: new secret, installment 1 "published"
// to nobody. A missing file is a new project; an empty one is a lost one.
function refuseUnusableFile(file: string): void {
  let stat: Stats;
  try {
    stat = statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!stat.isFile())
    throw new UserError(
      `${file}: the database path is not a regular file; point dataDir at a folder holding feuilleton.db`,
    );
  if (stat.size === 0)
    throw new UserError(
      `${file}: the database file is empty (0 bytes), so every reader and published installment would be lost; ` +
        START_AFRESH,
    );
  const head = Buffer.alloc(SQLITE_HEADER.length);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  if (!head.equals(SQLITE_HEADER)) throw new UserError(`${file}: not a SQLite database; ${START_AFRESH}`);
}

/** SQLite's quick_check: null when the file is sound, else its first complaint on one line. Reads the whole file. */
export function quickCheck(db: DB): string | null {
  let result: string;
  try {
    result = String(db.pragma('quick_check(1)', { simple: true }));
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return (err as Error).message;
    throw err;
  }
  return result === 'ok'
    ? null
    : result
        .replace(/\*\*\* in database main \*\*\*/g, '')
        .replace(/\s+/g, ' ')
        .trim();
}

function migrate(db: DB): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new UserError(
      `${db.name}: database schema version ${current} is newer than this feuilleton (${MIGRATIONS.length}); ` +
        'upgrade feuilleton',
    );
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

export const nowIso = (): string => new Date().toISOString();
