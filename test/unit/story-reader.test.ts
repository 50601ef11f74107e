// What a reader sees of the story around and at the edges of an installment: the author's
// header fields under their own names, line breaks typed inside a paragraph, and the
// first lines of an installment that starts at a scene break or a chapter.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { installmentHtml, readingBlocks, SCENE_BREAK_ORNAMENT } from '../../src/render/fragment.ts';
import { installmentText } from '../helpers/story-text.ts';
import { storyInfo } from '../../src/story/info.ts';
import { parseStory, parseStoryText, StoryError } from '../../src/story/parse.ts';
import { splitStory } from '../../src/story/split.ts';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'stories');
const config = loadConfig({ cwd: FIXTURES, env: {} });

describe('the header as the author wrote it', () => {
  test('every field keeps its key as written; rating and warnings come first, then the rest in the author\u2019s order', () => {
    const info = storyInfo(config, parseStory(path.join(FIXTURES, 'fanfic-header.txt')));
    assert.deepEqual(info.details, [
      { key: 'Rating', value: 'R' },
      { key: 'Warnings', value: 'Grief, a death in the past' },
      { key: 'Pairing', value: 'Mara/Ines' },
      { key: 'Category', value: 'Drama, Romance' },
      { key: 'Timeline/ Spoilers', value: 'after the flood' },
      { key: 'Beta Reader', value: 'Thanks to Pell' },
    ]);
    assert.deepEqual(info.notes, ['A short story, complete.']);
  });

  test('"Rated: M" and "Pairings:" stay as typed; a rating from the config is "Rating"', () => {
    const story = parseStoryText('Title: T\nRated: M\nPairings: A/B\nContent Warnings: blood\n\nBody.\n', 'x.txt');
    assert.deepEqual(
      storyInfo(config, story).details.map((d) => d.key),
      ['Rated', 'Content Warnings', 'Pairings'],
    );
    const overridden = storyInfo({ ...config, story: { ...config.story, rating: 'T' } }, story);
    assert.deepEqual(overridden.details[0], { key: 'Rating', value: 'T' });
  });

  test('front matter keys are shown as written too', () => {
    const info = storyInfo(config, parseStory(path.join(FIXTURES, 'chapters.md')));
    assert.deepEqual(info.details.slice(0, 2), [
      { key: 'rating', value: 'M' },
      { key: 'warnings', value: 'none' },
    ]);
    assert.ok(info.details.some((d) => d.key === 'fandom' && d.value === 'Original Work'));
  });
});

describe('line breaks inside a paragraph of a .txt story', () => {
  const letter = 'Dear Anna,\nthe roses are in.\n  Love, M.';

  test('a letter typed line by line keeps its lines in HTML (<br>) and in text, byte for byte', () => {
    const s = parseStoryText(`Title: T\n\nShe read it twice.\n\n${letter}\n\nThen she burned it.\n`, 'x.txt');
    const block = s.blocks[1]!;
    assert.equal(block.text, letter);
    assert.equal(block.kind === 'paragraph' && block.html, 'Dear Anna,<br>\nthe roses are in.<br>\n  Love, M.');
    assert.ok(installmentText(s.blocks).includes(letter));
  });

  test('a hard-wrapped file (every line filled to the margin) still reads as flowing paragraphs', () => {
    const words = 'the harbour lamps were lit one by one along the mole and nobody saw who lit them'.split(' ');
    const wrap = (n: number): string => {
      const lines: string[] = [];
      let line = '';
      for (let i = 0; i < n; i++) {
        const w = words[(i * 5 + n) % words.length]!;
        if (line && line.length + 1 + w.length > 60) {
          lines.push(line);
          line = w;
        } else line = line ? `${line} ${w}` : w;
      }
      return [...lines, `${line}.`].join('\n');
    };
    const s = parseStoryText([wrap(60), wrap(45), wrap(80)].join('\n\n'), 'x.txt');
    for (const b of s.blocks) assert.ok(b.kind === 'paragraph' && !b.html.includes('<br>'), b.text);
    assert.equal(s.blocks[0]!.text, wrap(60), 'the text itself is kept as typed');
  });

  test('Markdown keeps its own rule: a single line break is a soft break', () => {
    const s = parseStoryText('One line\nand the next.\n', 'x.md');
    assert.doesNotMatch((s.blocks[0] as { html: string }).html, /<br>/);
  });
});

describe('the edges of an installment', () => {
  test('an installment that starts (or ends) at a scene break does not show the ornament there', () => {
    const s = parseStoryText('First scene, long enough.\n\n* * *\n\nSecond scene.\n\n* * *\n', 'x.txt');
    const inst = { title: 'Part 2', blocks: s.blocks };
    const html = installmentHtml(readingBlocks(inst));
    const text = installmentText(readingBlocks(inst));
    assert.ok(html.startsWith('<p>First scene'), html);
    assert.ok(!html.trimEnd().endsWith(`${SCENE_BREAK_ORNAMENT}</p>`), html);
    assert.equal(html.split(SCENE_BREAK_ORNAMENT).length, 2, 'the break between the scenes stays');
    assert.equal(text.split(SCENE_BREAK_ORNAMENT).length, 2);
    const opening = { title: 'Part 3', blocks: s.blocks.slice(1, 3) };
    assert.equal(installmentHtml(readingBlocks(opening)), '<p>Second scene.</p>');
  });

  test('a Markdown installment that starts a chapter shows the chapter title once (it is the installment title)', () => {
    const story = parseStory(path.join(FIXTURES, 'chapters.md'));
    const parts = splitStory(story.blocks, { targetWords: 60, wordsPerMinute: 230, partTitle: 'Part {n}' });
    const chapter = parts.find((p) => p.title === 'One: The Survey');
    assert.ok(chapter, parts.map((p) => p.title).join(' | '));
    assert.doesNotMatch(installmentHtml(readingBlocks(chapter)), /One: The Survey/);
    assert.doesNotMatch(installmentText(readingBlocks(chapter)), /One: The Survey/);
    assert.equal(readingBlocks(chapter).length, chapter.blocks.length - 1, 'only the heading is left out');
  });

  test('a chapter heading inside an installment stays', () => {
    const s = parseStoryText('Before.\n\n## Later\n\nAfter.\n', 'x.md');
    assert.match(installmentHtml(readingBlocks({ title: 'Part 1', blocks: s.blocks })), /<h2>Later<\/h2>/);
  });
});

test('a nested front matter value is an error naming the key, not the text "[object Object]"', () => {
  assert.throws(
    () => parseStoryText('---\ntitle: T\nauthor:\n  name: Someone\n---\n\nBody.\n', 'nested.md'),
    (err: Error) =>
      err instanceof StoryError &&
      /nested\.md/.test(err.message) &&
      /"author"/.test(err.message) &&
      !err.message.includes('\n'),
  );
});
