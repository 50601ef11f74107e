// `backup` and `init`: the operator's housekeeping.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CONFIG_FILE_NAME, PACKAGE_ROOT } from '../config.ts';
import { UserError } from '../errors.ts';
import { pathReason } from '../failures.ts';
import type { Store } from '../store/index.ts';

/** Online backup (SQLite's backup API): safe while `serve` or `send` is writing. */
export async function backup(store: Store, file: string): Promise<{ file: string; pages: number }> {
  const target = path.resolve(file);
  if (existsSync(target)) throw new UserError(`${target} already exists; choose a new file name (backups never overwrite)`);
  const dir = path.dirname(target);
  const cannot = (reason: string) => new UserError(`cannot write the backup to ${target} (${reason}); choose a file in a folder you can write to`);
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw cannot(`${dir} is a file`);
  try {
    mkdirSync(dir, { recursive: true });
    const result = await store.db.backup(target);
    return { file: target, pages: result.totalPages };
  } catch (err) {
    // A partial copy is no backup, and would make the next attempt refuse the name.
    if (existsSync(target)) rmSync(target);
    throw cannot(pathReason(err));
  }
}

const SAMPLE_STORY = 'story/the-lamplighters-ledger.txt';
const OWN_TEMPLATES = 'templatesDir: templates  # the copies made by "feuilleton init": adapt them freely';

/** The scaffolded config points at the project's own template copies, not the package's. */
function useOwnTemplates(configText: string): string {
  const commented = /^#\s*templatesDir:.*$/m;
  return commented.test(configText) ? configText.replace(commented, OWN_TEMPLATES) : `${configText.trimEnd()}\n${OWN_TEMPLATES}\n`;
}

/**
 * A new story project: the commented config, the sample story to replace, and copies of
 * the templates to adapt. Refuses to overwrite anything.
 */
export function init(dir: string): string[] {
  const root = path.resolve(dir);
  if (existsSync(path.join(root, CONFIG_FILE_NAME))) {
    throw new UserError(`${root} already holds a feuilleton project (${CONFIG_FILE_NAME}); "init" never overwrites one (pick a new folder)`);
  }
  if (existsSync(root) && !statSync(root).isDirectory()) throw new UserError(`${root} is a file; "init" needs a new folder`);
  if (existsSync(root) && readdirSync(root).length > 0) {
    throw new UserError(`${root} is not empty; "init" only creates new projects (pick a new folder)`);
  }
  mkdirSync(path.join(root, 'data'), { recursive: true });
  writeFileSync(path.join(root, CONFIG_FILE_NAME), useOwnTemplates(readFileSync(path.join(PACKAGE_ROOT, CONFIG_FILE_NAME), 'utf8')));
  cpSync(path.join(PACKAGE_ROOT, SAMPLE_STORY), path.join(root, SAMPLE_STORY));
  cpSync(path.join(PACKAGE_ROOT, 'templates'), path.join(root, 'templates'), { recursive: true });
  writeFileSync(path.join(root, 'data', '.gitkeep'), '');
  writeFileSync(path.join(root, '.gitignore'), 'data/*\n!data/.gitkeep\n');
  return [CONFIG_FILE_NAME, SAMPLE_STORY, 'templates/', 'data/', '.gitignore'].map((f) => path.join(root, f));
}
