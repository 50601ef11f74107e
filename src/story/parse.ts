// Turns an author's story file into metadata and a list of blocks. The rule that shapes
// everything here: block `text` is always an exact slice of the file, so joining the blocks
// back gives the author's body paragraphs byte for byte. Only the HTML renderings interpret.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import MarkdownIt from 'markdown-it';
import { parse as parseYaml } from 'yaml';
import { UserError } from '../errors.ts';
import type { Block, ParsedStory, StoryMeta } from './types.ts';

export class StoryError extends UserError {
  constructor(file: string, problem: string) {
    super(`story file ${file}: ${problem}`);
    this.name = 'StoryError';
  }
}

type Format = ParsedStory['format'];

export const formatFor = (file: string): Format => (/\.(md|markdown|mdown|mkd)$/i.test(file) ? 'markdown' : 'text');

/** Words as a reader counts them: contractions and hyphenated words are one word. */
export function countWords(text: string): number {
  return text.match(/[\p{L}\p{N}]+(?:['’\-‐][\p{L}\p{N}]+)*/gu)?.length ?? 0;
}

// Raw HTML in a story is shown as text, and quotes stay exactly as typed (no typographer).
const markdown = new MarkdownIt({ html: false, linkify: false, typographer: false });

function decode(file: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'is a directory, not a file'
          : code === 'EACCES'
            ? 'permission denied'
            : (err as Error).message;
    throw new StoryError(file, `cannot be read (${why}); check story.file in the config`);
  }
  if (bytes.length === 0)
    throw new StoryError(file, 'is empty; write the story into it or point story.file at another file');
  if (bytes.includes(0))
    throw new StoryError(
      file,
      'looks like a binary file, not text; save the story as plain text (.txt) or Markdown (.md)',
    );
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new StoryError(file, 'is not valid UTF-8 text; re-save it with UTF-8 encoding');
  }
}

export function parseStory(file: string): ParsedStory {
  return parseStoryText(decode(file), file, formatFor(file));
}

// --- chunks -------------------------------------------------------------------------------

interface Chunk {
  text: string;
  start: number;
}

/** Paragraph-sized pieces of `source`: separated by blank (or whitespace-only) lines. */
function chunksOf(source: string, from: number): Chunk[] {
  const chunks: Chunk[] = [];
  const separator = /\r?\n(?:[ \t\u00a0]*\r?\n)+/g;
  let start = from;
  const push = (end: number): void => {
    let text = source.slice(start, end);
    let s = start;
    // A first/last "line" that is only whitespace is layout, not part of the paragraph.
    const lead = /^(?:[ \t\u00a0]*\r?\n)+/.exec(text);
    if (lead) {
      s += lead[0].length;
      text = text.slice(lead[0].length);
    }
    text = text.replace(/(?:\r?\n[ \t\u00a0]*)+$/, '');
    if (text.trim() !== '') chunks.push({ text, start: s });
  };
  separator.lastIndex = from;
  for (let m = separator.exec(source); m; m = separator.exec(source)) {
    push(m.index);
    start = m.index + m[0].length;
  }
  push(source.length);
  return chunks;
}

const lines = (text: string): string[] => text.split(/\r?\n/);

// --- scene breaks -------------------------------------------------------------------------

const ORNAMENT = /[*#~=_+•·◆◇♦❖✦✧★☆※⁂§°]/u;

/** `* * *`, `***`, `#`, `~~~`, `---`, `o0o`, a centred `❖`…: a line of symbols only. */
export function isSceneBreak(line: string): boolean {
  const t = line.trim();
  if (t === '' || t.length > 40 || /\n/.test(t)) return false;
  if (/^[*#~=_+•·◆◇♦❖✦✧★☆※⁂§°\-–—\s]+$/u.test(t)) return ORNAMENT.test(t) || (t.match(/[-–—]/g)?.length ?? 0) >= 3;
  // o0o, oOo, 0o0, OoO: only when mixed, so that a paragraph "ooo" or "000" stays text.
  const compact = t.replace(/\s+/g, '');
  return (
    /^[oO0]{3,9}$/.test(compact) &&
    ((/0/.test(compact) && /o/i.test(compact)) || (/o/.test(compact) && /O/.test(compact)))
  );
}

// --- header block -------------------------------------------------------------------------

// Keys authors put in a header, matched case- and space-insensitively, mapped to meta fields.
const KNOWN_KEYS: Record<string, keyof StoryMeta | 'extra'> = {
  title: 'title',
  author: 'author',
  authors: 'author',
  writer: 'author',
  by: 'author',
  summary: 'summary',
  description: 'summary',
  blurb: 'summary',
  rating: 'rating',
  rated: 'rating',
  category: 'category',
  categories: 'category',
  genre: 'category',
  genres: 'category',
  pairing: 'pairing',
  pairings: 'pairing',
  warning: 'warnings',
  warnings: 'warnings',
  'content warnings': 'warnings',
  'timeline/spoilers': 'extra',
  spoilers: 'extra',
  timeline: 'extra',
  fandom: 'extra',
  characters: 'extra',
  'word count': 'extra',
  words: 'extra',
  status: 'extra',
  disclaimer: 'extra',
  notes: 'extra',
  "author's notes": 'extra',
  'author’s notes': 'extra',
  "author's note": 'extra',
  'author’s note': 'extra',
  'a/n': 'extra',
  dedication: 'extra',
  beta: 'extra',
  series: 'extra',
  language: 'extra',
  feedback: 'extra',
  archive: 'extra',
};

/** A header key as compared: lower case, single spaces, no space around "/". */
export const normalizeKey = (key: string): string =>
  key
    .toLowerCase()
    .replace(/\s*\/\s*/g, '/')
    .replace(/\s+/g, ' ')
    .trim();

/**
 * What a header key stands for (`Rated` → rating, `Timeline/ Spoilers` → extra), undefined
 * for a key we do not know.
 */
export const headerFieldKind = (key: string): keyof StoryMeta | 'extra' | undefined => KNOWN_KEYS[normalizeKey(key)];

// `Key : value` with a short key of at most four words (`Timeline/ Spoilers`, `Word count`).
const KEY_LINE = /^\s*([\p{L}][\p{L}\p{N}'’&]*(?:\s*[ /]\s*[\p{L}\p{N}'’&]+){0,3})\s*:\s*(.*?)\s*$/u;
const BY_LINE = /^\s*(?:written\s+)?by\s+(\S.{0,80}?)\s*$/i;
// Free header lines such as "A short story, complete." — only these kinds of notes, so that a
// short opening line of the story itself is never taken for header.
const NOTE_LINE =
  /\b(complete|completed|incomplete|unfinished|wip|work in progress|one[- ]?shot|drabble|ficlet|short story|novella|novelette|novel|serial|chapters?|\d+\s+words|disclaimer|copyright|all rights reserved|sequel|prequel)\b|©|\(c\)/i;

type HeaderLine =
  | { kind: 'key'; key: string; known: boolean; value: string }
  | { kind: 'by'; value: string }
  | { kind: 'note'; value: string }
  | null;

function headerLine(line: string): HeaderLine {
  if (line.length > 400) return null;
  const by = BY_LINE.exec(line);
  if (by && by[1]!.split(/\s+/).length <= 8) return { kind: 'by', value: by[1]! };
  const kv = KEY_LINE.exec(line);
  if (kv) {
    const key = normalizeKey(kv[1]!);
    return { kind: 'key', key: kv[1]!.trim(), known: key in KNOWN_KEYS, value: kv[2]! };
  }
  const t = line.trim();
  if (t.length <= 80 && NOTE_LINE.test(t)) return { kind: 'note', value: t };
  return null;
}

/** The header lines of a chunk, or null when the chunk is not header-like. */
function headerChunk(chunk: Chunk): Exclude<HeaderLine, null>[] | null {
  const parsed = lines(chunk.text).map(headerLine);
  if (parsed.some((l) => l === null)) return null;
  const ls = parsed as Exclude<HeaderLine, null>[];
  const anchored = ls.some((l) => l.kind === 'by' || (l.kind === 'key' && l.known));
  // An unknown `Key: value` is header only next to known ones; "Note: it rained." alone is story.
  if (!anchored && ls.some((l) => l.kind === 'key')) return null;
  if (!anchored && ls.length > 2) return null;
  return ls;
}

function emptyMeta(): StoryMeta {
  return { extra: {}, notes: [], fields: [] };
}

function applyHeader(meta: StoryMeta, ls: Exclude<HeaderLine, null>[]): void {
  for (const l of ls) {
    if (l.kind === 'by') meta.author ??= l.value;
    else if (l.kind === 'note') meta.notes.push(l.value);
    else setMeta(meta, l.key, l.value);
  }
}

function setMeta(meta: StoryMeta, key: string, value: string): void {
  const normalized = normalizeKey(key);
  if (value !== '' && !meta.fields.some((f) => normalizeKey(f.key) === normalized)) meta.fields.push({ key, value });
  const field = KNOWN_KEYS[normalized];
  if (field && field !== 'extra' && field !== 'notes') {
    if (meta[field] === undefined && value !== '') (meta as unknown as Record<string, string>)[field] = value;
  } else if (!(key in meta.extra)) meta.extra[key] = value;
}

/** Leading chunks that form the header. Needs at least one known key or a `By` line. */
function takeHeader(chunks: Chunk[], meta: StoryMeta): number {
  let n = 0;
  let anchored = false;
  const collected: Exclude<HeaderLine, null>[] = [];
  while (n < chunks.length) {
    const ls = headerChunk(chunks[n]!);
    if (!ls) break;
    const hasAnchor = ls.some((l) => l.kind === 'by' || (l.kind === 'key' && l.known));
    // A notes-only chunk belongs to the header only once a real header has started.
    if (!hasAnchor && !anchored) break;
    anchored ||= hasAnchor;
    collected.push(...ls);
    n++;
  }
  if (!anchored) return 0;
  applyHeader(meta, collected);
  return n;
}

// --- front matter ------------------------------------------------------------------------

function takeFrontMatter(source: string, file: string, meta: StoryMeta): number {
  const open = /^---[ \t]*\r?\n/.exec(source);
  if (!open) return 0;
  const close = /^(?:---|\.\.\.)[ \t]*(?:\r?\n|$)/m;
  const rest = source.slice(open[0].length);
  const end = close.exec(rest);
  if (!end)
    throw new StoryError(
      file,
      'front matter opened with "---" on the first line is never closed; add a closing "---" line',
    );
  let data: unknown;
  try {
    data = parseYaml(rest.slice(0, end.index));
  } catch (err) {
    throw new StoryError(
      file,
      `front matter is not valid YAML (${(err as Error).message.split('\n')[0]}); fix it or remove it`,
    );
  }
  if (data !== null && data !== undefined) {
    if (typeof data !== 'object' || Array.isArray(data))
      throw new StoryError(file, 'front matter must be "key: value" lines (a YAML mapping)');
    for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
      if (value === null || value === undefined) continue;
      const values = Array.isArray(value) ? value : [value];
      if (values.some((v) => typeof v === 'object' && v !== null))
        throw new StoryError(
          file,
          `front matter key "${key}" has a nested value; ` +
            `write it as one line of text (or a list of words), such as ${key}: value`,
        );
      // Objects were refused above: what is left are strings, numbers, booleans and dates.
      const text = (values as Array<string | number | boolean | Date>).map(String).join(', ');
      setMeta(meta, key, text);
    }
  }
  return open[0].length + end.index + end[0].length;
}

// --- blocks -------------------------------------------------------------------------------

const HEADING = /^\s{0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$/;

// --- line breaks inside a plain-text paragraph -----------------------------------------------

const firstWord = (line: string): string => /^\s*(\S*)/.exec(line)![1]!;

/**
 * The margin a hard-wrapped file was filled to, or null when its line breaks are the
 * author's own. In a file wrapped at width W a line ends only where the next word would not
 * fit; when nearly every break inside a paragraph is such a break, the file is wrapped.
 */
function wrapWidth(paragraphs: string[]): number | null {
  const breaks: Array<[string, string]> = [];
  let width = 0;
  for (const p of paragraphs) {
    const ls = lines(p).map((l) => l.trimEnd());
    for (const l of ls) width = Math.max(width, l.length);
    for (let i = 0; i + 1 < ls.length; i++) breaks.push([ls[i]!, ls[i + 1]!]);
  }
  if (breaks.length < 3 || width > 120) return null;
  const wraps = breaks.filter(([line, next]) => line.length + 1 + firstWord(next).length > width).length;
  return wraps >= breaks.length * 0.8 ? width : null;
}

/**
 * A .txt paragraph as inline HTML: a line break the author typed (a letter, verse) is a
 * `<br>`; one that only marks the margin of a hard-wrapped file reads as a space.
 */
function textHtml(text: string, width: number | null): string {
  const ls = lines(text);
  return ls
    .map((line, i) => {
      const escaped = markdown.utils.escapeHtml(line);
      const next = ls[i + 1];
      if (next === undefined) return escaped;
      const wrapped = width !== null && line.trimEnd().length + 1 + firstWord(next).length > width;
      return `${escaped}${wrapped ? '\n' : '<br>\n'}`;
    })
    .join('');
}

function paragraph(text: string, format: Format, width: number | null): Block {
  return { kind: 'paragraph', text, html: format === 'markdown' ? markdown.renderInline(text) : textHtml(text, width) };
}

function blocksOf(chunk: Chunk, format: Format, width: number | null = null): Block[] {
  if (isSceneBreak(chunk.text)) return [{ kind: 'scene-break', text: chunk.text }];
  if (format === 'markdown') {
    // A heading line may sit directly on top of its first paragraph with no blank line.
    const m = /^([^\r\n]*)(\r?\n)?([\s\S]*)$/.exec(chunk.text)!;
    const h = HEADING.exec(m[1]!);
    if (h) {
      const heading: Block = {
        kind: 'heading',
        text: m[1]!,
        title: h[2]!,
        level: h[1]!.length,
        html: markdown.renderInline(h[2]!),
      };
      const rest = m[3] ?? '';
      return rest.trim() === ''
        ? [heading]
        : [heading, ...blocksOf({ text: rest, start: chunk.start + m[1]!.length + (m[2]?.length ?? 0) }, format)];
    }
  }
  return [paragraph(chunk.text, format, width)];
}

export function parseStoryText(text: string, file: string, format: Format = formatFor(file)): ParsedStory {
  // A byte-order mark is encoding, not words.
  const source = text.startsWith('\ufeff') ? text.slice(1) : text;
  if (source.trim() === '') throw new StoryError(file, 'has no text (only blank lines); write the story into it');
  const meta = emptyMeta();
  const bodyStart = format === 'markdown' ? takeFrontMatter(source, file, meta) : 0;
  const chunks = chunksOf(source, bodyStart);
  const headerChunks = takeHeader(chunks, meta);
  const body = chunks.slice(headerChunks);
  const width = format === 'text' ? wrapWidth(body.filter((c) => !isSceneBreak(c.text)).map((c) => c.text)) : null;
  const blocks = body.flatMap((c) => blocksOf(c, format, width));
  if (!blocks.some((b) => b.kind === 'paragraph'))
    throw new StoryError(
      file,
      'has a header but no story text after it; add the story below the header, separated by a blank line',
    );
  return { file: path.resolve(file), format, meta, blocks };
}
