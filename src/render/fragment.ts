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

/**
 * The blocks a reader is shown for an installment. A scene-break marker at either edge
 * separates nothing from nothing there, and an opening chapter heading is the installment's
 * own title, which every rendering already shows above the text. The stored blocks (and
 * their hash) keep all of them.
 */
export function readingBlocks(inst: { title: string; blocks: Block[] }): Block[] {
  let start = 0;
  let end = inst.blocks.length;
  while (start < end && inst.blocks[start]!.kind === 'scene-break') start++;
  while (end > start && inst.blocks[end - 1]!.kind === 'scene-break') end--;
  const opening = inst.blocks[start];
  if (opening?.kind === 'heading' && opening.title === inst.title) start++;
  return inst.blocks.slice(start, end);
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
