// The one rendering of an installment's text. Email, feeds and web pages all embed these
// strings, which is what makes "the same installment reads the same everywhere" true by
// construction rather than by keeping several renderers in step.
//
// Scene breaks render as a neutral ornament, not the author's marker: the marker (`#`,
// `~~~`, `o0o`…) is markup like Markdown's `***`, not prose, and one ornament reads the same
// in every client and format. The author's marker stays in `Block.text` for hashing.
import type { StoryInfo } from '../story/info.ts';
import type { Block } from '../story/types.ts';

export const SCENE_BREAK_ORNAMENT = '* * *';

/** Plain-text scene break: the ornament centered on a conventional 72-column line. */
export const SCENE_BREAK_LINE = SCENE_BREAK_ORNAMENT.padStart(Math.floor((72 + SCENE_BREAK_ORNAMENT.length) / 2));

const SCENE_BREAK_HTML = `<p class="scene-break" role="separator" aria-label="scene break">${SCENE_BREAK_ORNAMENT}</p>`;

const HTML_ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => HTML_ENTITIES[c]!);

/** The adult-content notice every rendering of an installment shows (email, feed item, web page), or null. */
export function ratingNotice(info: StoryInfo): string | null {
  if (!info.adult) return null;
  return info.rating ? `Rated ${info.rating} — for adult readers` : 'For adult readers';
}

/** Block-level HTML; `Block.html` is already escaped inline HTML, so nothing is escaped here. */
export function installmentHtml(blocks: Block[]): string {
  return blocks
    .map((b) => {
      switch (b.kind) {
        case 'paragraph':
          return `<p>${b.html}</p>`;
        case 'heading':
          return `<h2>${b.html}</h2>`;
        case 'scene-break':
          return SCENE_BREAK_HTML;
      }
    })
    .join('\n');
}

/** Plain text with the author's exact words, one blank line between blocks. */
export function installmentText(blocks: Block[]): string {
  return blocks
    .map((b) => {
      switch (b.kind) {
        case 'paragraph':
          return b.text;
        case 'heading':
          return b.title;
        case 'scene-break':
          return SCENE_BREAK_LINE;
      }
    })
    .join('\n\n');
}

/** For tests comparing renderings: whitespace runs become one space; entities are left alone. */
export const normalizeForCompare = (s: string): string => s.replace(/\s+/g, ' ').trim();
