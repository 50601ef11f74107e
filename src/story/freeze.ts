// Keeps the stored installments in step with the story file without ever changing what
// readers already have: frozen installments stay as they were, only the rest is re-split.
import { hashBlocks, splitStory, type SplitOptions } from './split.ts';
import type { Block, Installment, StoredInstallment } from './types.ts';

/** What keeping the installments in step needs of the store. */
export interface InstallmentLedger {
  frozen(): StoredInstallment[];
  all(): StoredInstallment[];
  replaceUnfrozen(next: Installment[]): void;
}

/** How the unfrozen rest is split: numbering and offsets follow from what is frozen. */
export type SyncOptions = Omit<SplitOptions, 'startNumber' | 'offset'>;

export interface SyncResult {
  installments: StoredInstallment[];
  /** One line per frozen installment whose text the story file no longer matches. */
  warnings: string[];
}

/**
 * Finds where the story's unfrozen remainder starts. A frozen installment that no longer
 * matches the file was edited: we keep the frozen text, warn, and re-align on its last
 * block so an inserted or deleted paragraph does not shift the rest of the story.
 */
function remainderStart(blocks: Block[], frozen: StoredInstallment[], warnings: string[]): number {
  let cursor = 0;
  for (const inst of frozen) {
    const candidate = blocks.slice(cursor, cursor + inst.blockCount);
    if (hashBlocks(candidate) === inst.hash) {
      cursor += inst.blockCount;
      continue;
    }
    warnings.push(
      `installment ${inst.number} ("${inst.title}") was ${inst.publishedAt ? 'published' : 'sent'} ` +
        'and differs from the story file now; the frozen text is kept and the edit is not applied',
    );
    const last = inst.blocks[inst.blocks.length - 1]!;
    const expected = cursor + inst.blockCount - 1;
    let best = -1;
    for (let j = cursor; j < blocks.length; j++) {
      if (blocks[j]!.text === last.text && (best < 0 || Math.abs(j - expected) < Math.abs(best - expected))) best = j;
    }
    cursor = best >= 0 ? best + 1 : Math.min(blocks.length, cursor + inst.blockCount);
  }
  return cursor;
}

export function syncInstallments(blocks: Block[], store: InstallmentLedger, opts: SyncOptions): SyncResult {
  const frozen = store.frozen();
  const warnings: string[] = [];
  const start = remainderStart(blocks, frozen, warnings);
  const rest = blocks.slice(start);
  const startNumber = (frozen.at(-1)?.number ?? 0) + 1;
  const next = rest.length === 0 ? [] : splitStory(rest, { ...opts, startNumber, offset: start });
  const current = store.all().filter((i) => !i.frozenAt);
  const unchanged =
    current.length === next.length &&
    current.every(
      (c, k) =>
        c.hash === next[k]!.hash &&
        c.number === next[k]!.number &&
        c.title === next[k]!.title &&
        c.firstBlock === next[k]!.firstBlock,
    );
  if (!unchanged) store.replaceUnfrozen(next);
  return { installments: store.all(), warnings };
}
