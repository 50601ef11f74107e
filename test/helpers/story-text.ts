// How tests read the story back: the author's exact words as plain text, and a comparison
// that ignores how each rendering spaces them.
import { SCENE_BREAK_LINE } from '../../src/render/fragment.ts';
import type { Block } from '../../src/story/types.ts';

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

/** Whitespace runs become one space; entities are left alone. */
export const normalizeForCompare = (s: string): string => s.replace(/\s+/g, ' ').trim();
