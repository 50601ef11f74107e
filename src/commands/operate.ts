// `backup` and `init`: the operator's housekeeping.
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { CONFIG_FILE_NAME, PACKAGE_ROOT } from '../config.ts';
import { UserError } from '../errors.ts';
import { pathReason } from '../failures.ts';
import type { Store } from '../store/index.ts';

/** Online backup (SQLite's backup API): safe while `serve` or `send` is writing. */
export async function backup(store: Store, file: string): Promise<{ file: string; pages: number }> {
  const target = path.resolve(file);
  if (existsSync(target))
    throw new UserError(`${target} already exists; choose a new file name (backups never overwrite)`);
  const dir = path.dirname(target);
  const cannot = (reason: string) =>
    new UserError(`cannot write the backup to ${target} (${reason}); choose a file in a folder you can write to`);
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

export interface InitOptions {
  /** The author's story file, copied into story/; the sample story when unset. */
  story?: string;
  title?: string;
  author?: string;
  from?: string;
  postalAddress?: string;
}

export interface InitResult {
  root: string;
  files: string[];
}

const ADDRESS = /^[^<>\r\n]*<[^<>\s@]+@[^<>\s@]+\.[^<>\s@]+>$|^[^<>\s@]+@[^<>\s@]+\.[^<>\s@]+$/;

function checkOptions(opts: InitOptions): void {
  for (const [flag, value] of [
    ['--title', opts.title],
    ['--author', opts.author],
    ['--from', opts.from],
    ['--postal-address', opts.postalAddress],
  ] as const) {
    if (value !== undefined && (/[\r\n]/.test(value) || !value.trim()))
      throw new UserError(`${flag} must be one line of text`);
  }
  if (opts.from !== undefined && !ADDRESS.test(opts.from.trim())) {
    throw new UserError(
      `--from "${opts.from}" is not an address; write it as "My Serial <serial@example.org>" or serial@example.org`,
    );
  }
  if (opts.story !== undefined && !(existsSync(opts.story) && statSync(opts.story).isFile())) {
    throw new UserError(`--story ${path.resolve(opts.story)}: no such file; give the path of your story (.txt or .md)`);
  }
}

/** Replaces the one line `pattern` matches: the sample config is the template, and a line it lost is a bug here. */
function setLine(text: string, pattern: RegExp, line: string): string {
  if (!pattern.test(text)) throw new Error(`the sample ${CONFIG_FILE_NAME} has no line matching ${pattern}`);
  return text.replace(pattern, line);
}

/** A YAML double-quoted scalar (JSON's string syntax is one). */
const scalar = (value: string): string => JSON.stringify(value.trim());

/**
 * The sample config made the project's own: its story, title and author, its sender and
 * postal address (left for `check` to flag when not given, never the sample's), its
 * template copies.
 */
function projectConfig(sample: string, storyFile: string, opts: InitOptions): string {
  let text = sample;
  text = setLine(text, /^( {2})file: .*$/m, `$1file: ${scalar(storyFile)}`);
  if (opts.title) text = setLine(text, /^( {2})# title: .*$/m, `$1title: ${scalar(opts.title)}`);
  if (opts.author) text = setLine(text, /^( {2})# author: .*$/m, `$1author: ${scalar(opts.author)}`);
  const from = opts.from ?? `${opts.title?.replace(/[<>",;]/g, '') ?? 'Feuilleton'} <serial@localhost>`;
  const fromNote = opts.from ? '' : '  # an address on your own domain before going live (feuilleton check)';
  text = setLine(text, /^( {2})from: .*$/m, `$1from: ${scalar(from)}${fromNote}`);
  const postalNote = opts.postalAddress
    ? ''
    : '  # yours, at the foot of every email (anti-spam law); feuilleton check flags it while empty';
  text = setLine(
    text,
    /^( {2})postalAddress: .*$/m,
    `$1postalAddress: ${scalar(opts.postalAddress ?? '')}${postalNote}`,
  );
  return setLine(
    text,
    /^#\s*templatesDir:.*$/m,
    'templatesDir: templates  # the copies made by "feuilleton init": adapt them freely',
  );
}

/**
 * What makes `npx feuilleton` and `npm start` work in the project: this checkout as a
 * dependency by path (`npm install` links it; nothing is downloaded, and no package of
 * that name is ever fetched from a registry).
 */
function projectPackage(root: string): string {
  const name =
    path
      .basename(root)
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .replace(/^[._-]+|-+$/g, '') || 'my-serial';
  const pkg = {
    name,
    private: true,
    description: 'A serial published with feuilleton',
    scripts: { start: 'feuilleton serve' },
    dependencies: { feuilleton: `file:${PACKAGE_ROOT}` },
  };
  return `${JSON.stringify(pkg, null, 2)}\n`;
}

/**
 * A new story project: the commented config, the story (the author's, or the sample to
 * replace), copies of the templates to adapt and a package.json. Refuses to overwrite anything.
 */
export function init(dir: string, opts: InitOptions = {}): InitResult {
  const root = path.resolve(dir);
  if (existsSync(path.join(root, CONFIG_FILE_NAME))) {
    throw new UserError(
      `${root} already holds a feuilleton project (${CONFIG_FILE_NAME}); ` +
        '"init" never overwrites one (pick a new folder)',
    );
  }
  if (existsSync(root) && !statSync(root).isDirectory())
    throw new UserError(`${root} is a file; "init" needs a new folder`);
  if (existsSync(root) && readdirSync(root).length > 0) {
    throw new UserError(`${root} is not empty; "init" only creates new projects (pick a new folder)`);
  }
  checkOptions(opts);
  const story = opts.story ? path.join('story', path.basename(opts.story)) : SAMPLE_STORY;
  mkdirSync(path.join(root, 'data'), { recursive: true });
  mkdirSync(path.join(root, 'story'), { recursive: true });
  copyFileSync(opts.story ?? path.join(PACKAGE_ROOT, SAMPLE_STORY), path.join(root, story));
  writeFileSync(
    path.join(root, CONFIG_FILE_NAME),
    projectConfig(
      readFileSync(path.join(PACKAGE_ROOT, CONFIG_FILE_NAME), 'utf8'),
      story.split(path.sep).join('/'),
      opts,
    ),
  );
  cpSync(path.join(PACKAGE_ROOT, 'templates'), path.join(root, 'templates'), { recursive: true });
  writeFileSync(path.join(root, 'package.json'), projectPackage(root));
  writeFileSync(path.join(root, 'data', '.gitkeep'), '');
  writeFileSync(path.join(root, '.gitignore'), 'data/*\n!data/.gitkeep\nnode_modules/\n');
  return {
    root,
    files: [CONFIG_FILE_NAME, story, 'templates/', 'data/', 'package.json', '.gitignore'].map((f) =>
      path.join(root, f),
    ),
  };
}

/** What to run after `init`, in the order an author needs it. */
export function nextSteps(project: InitResult, port = 3000): string {
  return [
    `Next, in ${project.root}:`,
    `  npm install            links feuilleton from ${PACKAGE_ROOT} (nothing is downloaded)`,
    `  npm start              the site at http://127.0.0.1:${port}/, emails in its local outbox`,
    '  npx feuilleton status  and send, preview, check, subscribers…: every command, from that folder',
    `Your story is ${project.files[1]}: replace it (or add yours and set story.file in ${CONFIG_FILE_NAME}).`,
    'Before going live, "npx feuilleton check" lists what is left to set: ' +
      'baseUrl, mail.from, mail.postalAddress, a mail server.',
  ].join('\n');
}
