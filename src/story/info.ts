// What the rest of the app needs to know about the story as a whole, with each value's
// source resolved once: config overrides the story header, the file name is the last resort.
import path from 'node:path';
import type { Config } from '../config.ts';
import type { ParsedStory } from './types.ts';

export interface StoryInfo {
  title: string;
  titleSource: 'config' | 'story header' | 'file name';
  author: string | undefined;
  summary: string | undefined;
  rating: string | undefined;
  adult: boolean;
  categories: string[];
  warnings: string | undefined;
  language: string;
}

// Ratings that mean "adults only" across the usual schemes (MPAA, fan-fiction archives, AO3).
const ADULT_RATING = /^\s*(r|m|ma|nc-?17|x{1,3}|e|explicit|mature|adult|adults only|18\+?)\s*(\(.*\))?\s*$/i;

export const isAdultRating = (rating: string | undefined): boolean => !!rating && ADULT_RATING.test(rating);

const titleFromFileName = (file: string): string => {
  const base = path.basename(file, path.extname(file)).replace(/[-_]+/g, ' ').trim();
  return base.charAt(0).toUpperCase() + base.slice(1);
};

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
    language: config.story.language,
  };
}
