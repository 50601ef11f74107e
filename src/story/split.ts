// Splits a story's blocks into installments of about the target length. Break points are chosen
// for the whole sequence at once (dynamic programming over block boundaries), so lengths come
// out balanced and the last installment is never a stub the way greedy filling leaves it.
import { createHash } from 'node:crypto';
import { countWords } from './parse.ts';
import type { Block, Installment } from './types.ts';

export interface SplitOptions {
  targetWords: number;
  wordsPerMinute: number;
  /** Title for installments that do not open with a chapter heading; `{n}` is the number. */
  partTitle: string;
  /** Number of the first installment produced (after frozen ones). */
  startNumber?: number;
  /** Index of `blocks[0]` in the whole story, recorded as `firstBlock`. */
  offset?: number;
}

/** Content hash of a run of blocks: changes whenever any of the author's text changes. */
export function hashBlocks(blocks: Block[]): string {
  const h = createHash('sha256');
  for (const b of blocks) h.update(`${b.kind}\u0000${b.text}\u0001`);
  return h.digest('hex');
}

export const blockWords = (b: Block): number =>
  b.kind === 'scene-break' ? 0 : countWords(b.kind === 'heading' ? b.title : b.text);

// Cost of starting the next installment at a block of this kind. Deviation from the target
// costs 100·d² (d = relative deviation), so a chapter heading wins over a plain paragraph
// boundary within about ±12% of the ideal point and a scene break within about ±8%.
const START_COST = { heading: 0, 'scene-break': 0.9, paragraph: 1.5 } as const;
// Ending an installment on a heading or scene-break marker strands it from the text it introduces.
const STRANDED_MARKER_COST = 50;
const TOLERANCE = 0.25;
const OUT_OF_TOLERANCE_COST = 2000;

function lengthCost(words: number, target: number): number {
  const d = (words - target) / target;
  const outside = Math.max(0, Math.abs(d) - TOLERANCE);
  return 100 * d * d + OUT_OF_TOLERANCE_COST * outside;
}

export function splitStory(blocks: Block[], opts: SplitOptions): Installment[] {
  if (!(opts.targetWords > 0)) throw new RangeError('targetWords must be positive');
  const n = blocks.length;
  if (n === 0) return [];
  const words = blocks.map(blockWords);
  const prefix = [0];
  for (const w of words) prefix.push(prefix.at(-1)! + w);
  const target = opts.targetWords;
  // Installments longer than this are never worth considering (each costs > 200).
  const maxWords = target * 2.5;

  // best[j]: least cost of splitting blocks[0..j); from[j]: where the last installment starts.
  const best = new Array<number>(n + 1).fill(Infinity);
  const from = new Array<number>(n + 1).fill(-1);
  best[0] = 0;
  for (let i = 0; i < n; i++) {
    if (best[i] === Infinity) continue;
    for (let j = i + 1; j <= n; j++) {
      const w = prefix[j]! - prefix[i]!;
      if (w > maxWords && j > i + 1) break;
      let cost = best[i]! + lengthCost(w, target);
      if (j < n) {
        cost += START_COST[blocks[j]!.kind];
        if (blocks[j - 1]!.kind !== 'paragraph') cost += STRANDED_MARKER_COST;
      }
      if (cost < best[j]!) {
        best[j] = cost;
        from[j] = i;
      }
    }
  }

  const starts: number[] = [];
  for (let j = n; j > 0; j = from[j]!) starts.unshift(from[j]!);
  const startNumber = opts.startNumber ?? 1;
  const offset = opts.offset ?? 0;
  return starts.map((start, k) => {
    const end = starts[k + 1] ?? n;
    const slice = blocks.slice(start, end);
    const number = startNumber + k;
    const wordCount = prefix[end]! - prefix[start]!;
    const opening = slice.find((b) => b.kind !== 'scene-break');
    return {
      number,
      title: opening?.kind === 'heading' ? opening.title : opts.partTitle.replaceAll('{n}', String(number)),
      blocks: slice,
      wordCount,
      minutes: Math.max(1, Math.round(wordCount / opts.wordsPerMinute)),
      hash: hashBlocks(slice),
      firstBlock: offset + start,
      blockCount: slice.length,
    };
  });
}
