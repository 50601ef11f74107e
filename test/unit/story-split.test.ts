import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { parseStory, parseStoryText } from '../../src/story/parse.ts';
import { blockWords, hashBlocks, splitStory } from '../../src/story/split.ts';
import type { Block, Installment } from '../../src/story/types.ts';
import { SAMPLE_STORY } from '../helpers/project.ts';

const lorem = ['tide', 'lamp', 'she', 'said', 'the', 'rope', 'salt', 'and', 'quiet', 'gull', 'ink', 'of'];
const prose = (n: number, seed: number): string =>
  Array.from({ length: n }, (_, i) => lorem[(i * 7 + seed) % lorem.length]).join(' ') + '.';

/** About 2,000 words in 42 paragraphs of 5 to 160 words, no chapter markers. */
function twoThousandWords(): { text: string; sizes: number[] } {
  const sizes: number[] = [];
  let x = 7;
  for (let i = 0; i < 42; i++) {
    x = (x * 48271) % 2147483647;
    sizes.push(5 + (x % 76));
  }
  sizes[3] = 160;
  sizes[17] = 5;
  sizes[30] = 150;
  const text = sizes.map((n, i) => prose(n, i)).join('\n\n') + '\n';
  return { text, sizes };
}

const opts = { targetWords: 575, wordsPerMinute: 230, partTitle: 'Part {n}' };
const words = (parts: Installment[]): number[] => parts.map((p) => p.wordCount);
const para = (n: number, seed = 0): Block => ({ kind: 'paragraph', text: prose(n, seed), html: '' });
const brk: Block = { kind: 'scene-break', text: '* * *' };

describe('splitStory', () => {
  test('~2,000 words, 42 paragraphs of 5–160 words: 3 or 4 balanced installments', () => {
    const { text, sizes } = twoThousandWords();
    const total = sizes.reduce((a, b) => a + b, 0);
    assert.ok(total > 1800 && total < 2300, `story has ${total} words`);
    const { blocks } = parseStoryText(text, 'gen.txt');
    assert.equal(blocks.length, 42);
    const parts = splitStory(blocks, opts);
    assert.ok(parts.length === 3 || parts.length === 4, `${parts.length} installments: ${words(parts).join(' ')}`);
    const mean = total / parts.length;
    for (const p of parts)
      assert.ok(Math.abs(p.wordCount - mean) / mean <= 0.25, `balanced: ${words(parts).join(' ')}`);
    assert.equal(
      parts.reduce((a, p) => a + p.blockCount, 0),
      42,
      'every paragraph in exactly one installment',
    );
  });

  test('~2,000 words at the default target (1,150 words) makes 2 balanced installments', () => {
    // The issue asks for 3 or 4 "with the default target", which no split within ±25% of
    // 1,150 words can give for 2,000 words; the test above asks it of half that target.
    const { text, sizes } = twoThousandWords();
    const total = sizes.reduce((a, b) => a + b, 0);
    const parts = splitStory(parseStoryText(text, 'gen.txt').blocks, { ...opts, targetWords: 1150 });
    assert.equal(parts.length, 2, `${words(parts).join(' ')}`);
    for (const p of parts)
      assert.ok(Math.abs(p.wordCount - total / 2) / (total / 2) <= 0.25, `balanced: ${words(parts).join(' ')}`);
  });

  test('every installment within ±25% of the target when paragraph sizes allow', () => {
    const parts = splitStory(parseStory(SAMPLE_STORY).blocks, { ...opts, targetWords: 800 });
    for (const p of parts) assert.ok(Math.abs(p.wordCount - 800) <= 200, `${words(parts).join(' ')}`);
  });

  test('the default target is five minutes of reading at 230 words per minute', () => {
    const config = loadConfig({ configPath: new URL('../../feuilleton.yaml', import.meta.url).pathname, env: {} });
    assert.equal(config.split.targetWords, 1150);
  });

  test('no tiny last installment: the whole sequence is balanced, not filled greedily', () => {
    // Greedy filling to 500 would give 500, 500, 100.
    const blocks = Array.from({ length: 11 }, (_, i) => para(100, i));
    const parts = splitStory(blocks, { ...opts, targetWords: 500 });
    assert.deepEqual(words(parts).sort(), [500, 600]);
  });

  test('prefers a scene break near the ideal point over a plain paragraph boundary', () => {
    // Ideal cut after 500 words; the scene break sits at 450.
    const blocks = [
      para(150, 1),
      para(150, 2),
      para(150, 3),
      brk,
      para(100, 4),
      para(100, 5),
      para(100, 6),
      para(100, 7),
      para(150, 8),
    ];
    const parts = splitStory(blocks, { ...opts, targetWords: 500 });
    assert.equal(parts.length, 2);
    assert.equal(parts[1]!.blocks[0]!.kind, 'scene-break', 'the second installment opens at the scene break');
    assert.equal(parts[0]!.blocks.at(-1)!.kind, 'paragraph', 'no installment ends on a marker');
  });

  test('a chapter heading near the ideal point starts an installment and titles it', () => {
    const story = parseStoryText(
      ['# The Quay', prose(230, 1), prose(230, 2), '# The Tower', prose(260, 3), prose(240, 4)].join('\n\n'),
      'c.md',
    );
    const parts = splitStory(story.blocks, { ...opts, targetWords: 500 });
    assert.deepEqual(
      parts.map((p) => p.title),
      ['The Quay', 'The Tower'],
    );
  });

  test('installments have number, title, words, minutes, hash, and numbering continues', () => {
    const blocks = Array.from({ length: 10 }, (_, i) => para(115, i));
    const parts = splitStory(blocks, {
      ...opts,
      targetWords: 575,
      partTitle: 'Episode {n}',
      startNumber: 4,
      offset: 12,
    });
    assert.deepEqual(
      parts.map((p) => p.number),
      [4, 5],
    );
    assert.deepEqual(
      parts.map((p) => p.title),
      ['Episode 4', 'Episode 5'],
    );
    assert.deepEqual(
      parts.map((p) => p.minutes),
      [3, 3],
    );
    assert.equal(parts[0]!.firstBlock, 12);
    assert.equal(parts[1]!.firstBlock, 17);
    assert.equal(parts[0]!.hash, hashBlocks(parts[0]!.blocks));
    assert.match(parts[0]!.hash, /^[0-9a-f]{64}$/);
  });

  test('never breaks inside a paragraph, even one longer than the target', () => {
    const blocks = [para(100, 1), para(1400, 2), para(100, 3)];
    const parts = splitStory(blocks, { ...opts, targetWords: 500 });
    assert.ok(parts.some((p) => p.blocks.includes(blocks[1]!)));
    assert.equal(
      parts.reduce((a, p) => a + p.blockCount, 0),
      3,
    );
  });

  test('deterministic: same input, same split', () => {
    const { blocks } = parseStory(SAMPLE_STORY);
    assert.deepEqual(splitStory(blocks, opts), splitStory(structuredClone(blocks), opts));
  });

  test('scene breaks count no words; headings count their title', () => {
    assert.equal(blockWords(brk), 0);
    assert.equal(blockWords({ kind: 'heading', text: '## Two Ways', title: 'Two Ways', level: 2, html: '' }), 2);
  });
});
