// The one line the CLI prints when a command fails. A full disk, a damaged database or a
// path that cannot be written is the operator's to fix and needs no stack trace; anything
// else is a bug, reported briefly (the stack comes with LOG_LEVEL=debug).
import { UserError } from './errors.ts';

const PATH_REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ENOTDIR: 'a part of the path is a file',
  EISDIR: 'it is a folder',
  ENOSPC: 'no space left on the disk',
  EDQUOT: 'disk quota exceeded',
  SQLITE_CANTOPEN: 'cannot create or open a file there',
};

/** Why writing to a path failed, in words (falls back to the error's own message). */
export function pathReason(err: unknown): string {
  const { code, message } = err as { code?: string; message?: string };
  return (code && PATH_REASONS[code]) ?? message ?? String(err);
}

/** The line to print after "feuilleton: ". `dbFile` is asked for only when the database is at fault. */
export function failureLine(err: unknown, dbFile: () => string | undefined): string {
  if (err instanceof UserError) return err.message;
  const { code = '', message = String(err), path: file } = err as { code?: string; message?: string; path?: string };
  const db = () => dbFile() ?? 'the database';
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
    return `${db()}: the database is damaged (${message}); restore it from a backup, or move it away to start afresh`;
  }
  if (code === 'SQLITE_FULL' || code.startsWith('SQLITE_IOERR')) {
    return (
      `${db()}: cannot write the database (${message}); ` +
      'check that the disk has free space and is working, then run the command again'
    );
  }
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN')) {
    return (
      `${db()}: cannot open the database for writing (${message}); ` +
      'check that its folder exists and that this user may write there'
    );
  }
  // A write to an open file reports no path: then the line cannot name it.
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return `${file ? `${file}: ` : ''}${pathReason(err)}; free some space, then run the command again`;
  if (code in PATH_REASONS && file)
    return `${file}: cannot write there (${pathReason(err)}); choose a place this user may write to`;
  return `unexpected error: ${message} (run with LOG_LEVEL=debug for details)`;
}
