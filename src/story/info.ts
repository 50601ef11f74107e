// What the rest of the app needs to know about the story as a whole, with each value's
// source resolved once: config overrides the story header, the file name is the last resort.
import path from 'node:path';
import type { Config } from '../config.ts';
import { headerFieldKind, normalizeKey } from './parse.ts';
import type { ParsedStory } from './types.ts';

/** One header field as readers see it, under the author's own key ("Pairing", "Rated", "Timeline/ Spoilers"). */
export interface StoryDetail {
  key: string;
  value: string;
}

export interface StoryInfo {
  title: string;
  titleSource: 'config' | 'story header' | 'file name';
  author: string | undefined;
  summary: string | undefined;
  rating: string | undefined;
  adult: boolean;
  categories: string[];
  warnings: string | undefined;
  /**
   * The header's fields for readers: rating and warnings first (what readers decide on, as AO3
   * shows them), then the rest in the author's order.
   */
  details: StoryDetail[];
  /** Free header lines such as "A short story, complete." */
  notes: string[];
  language: string;
}

// Shown elsewhere already: as the page title, the byline and the summary.
const NOT_DETAILS = new Set(['title', 'author', 'summary']);
const FIRST = ['rating', 'warnings'];

function details(meta: ParsedStory['meta'], configRating: string | undefined): StoryDetail[] {
  const kind = (d: StoryDetail) => headerFieldKind(d.key) ?? 'extra';
  // The config's rating overrides the header's, under the config's own name for it.
  const fields = meta.fields.filter(
    (d) => !NOT_DETAILS.has(kind(d)) && !(configRating !== undefined && kind(d) === 'rating'),
  );
  if (configRating !== undefined) fields.unshift({ key: 'Rating', value: configRating });
  const rank = (d: StoryDetail) => {
    const i = FIRST.indexOf(kind(d));
    return i < 0 ? FIRST.length : i;
  };
  // Array.prototype.sort is stable: the rest keeps the author's order.
  return fields.sort((a, b) => rank(a) - rank(b));
}

// Ratings that mean "adults only" across the usual schemes (MPAA, fan-fiction archives, AO3).
const ADULT_RATING = /^\s*(r|m|ma|nc-?17|x{1,3}|e|explicit|mature|adult|adults only|18\+?)\s*(\(.*\))?\s*$/i;

export const isAdultRating = (rating: string | undefined): boolean => !!rating && ADULT_RATING.test(rating);

const titleFromFileName = (file: string): string => {
  const base = path.basename(file, path.extname(file)).replace(/[-_]+/g, ' ').trim();
  return base.charAt(0).toUpperCase() + base.slice(1);
};

// Header fields that are labels a reader filters on, rather than prose (notes, disclaimers).
const LABEL_KINDS = new Set(['rating', 'warnings', 'pairing']);
const LABEL_EXTRAS = new Set([
  'timeline/spoilers',
  'spoilers',
  'timeline',
  'fandom',
  'characters',
  'status',
  'series',
  'language',
]);

/**
 * The story's categories as feeds carry them: each Category value alone, then the other
 * label-like fields as "Key: value" under the author's key ("Rating: M", "Pairing: A/B").
 */
export function feedCategories(info: StoryInfo): string[] {
  const labels = info.details.filter((d) => {
    const kind = headerFieldKind(d.key);
    return kind !== undefined && (LABEL_KINDS.has(kind) || (kind === 'extra' && LABEL_EXTRAS.has(normalizeKey(d.key))));
  });
  return [...info.categories, ...labels.map((d) => `${d.key}: ${d.value}`)];
}

export function storyInfo(config: Config, story: ParsedStory): StoryInfo {
  const { meta } = story;
  const [title, titleSource]: [string, StoryInfo['titleSource']] = config.story.title
    ? [config.story.title, 'config']
    : meta.title
      ? [meta.title, 'story header']
      : [titleFromFileName(story.file), 'file name'];
  const rating = config.story.rating ?? meta.rating;
  return {
    title,
    titleSource,
    author: config.story.author ?? meta.author,
    summary: config.story.summary ?? meta.summary,
    rating,
    adult: config.story.adult ?? isAdultRating(rating),
    categories: (meta.category ?? '')
      .split(/[,;]/)
      .map((c) => c.trim())
      .filter(Boolean),
    warnings: meta.warnings,
    details: details(meta, config.story.rating),
    notes: meta.notes,
    language: config.story.language,
  };
}
