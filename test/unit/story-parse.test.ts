import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { countWords, isSceneBreak, parseStory, parseStoryText, StoryError } from '../../src/story/parse.ts';
import type { ParsedStory } from '../../src/story/types.ts';
import { SAMPLE_STORY } from '../helpers/project.ts';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'stories');
const fixture = (name: string): string => path.join(FIXTURES, name);

/**
 * The body paragraphs of `file` computed independently of the parser: everything from the
 * line `firstBodyLine` on (front matter and header excluded by the test, not by the parser),
 * cut at blank lines.
 */
function bodyOf(file: string, firstBodyLine: string): string {
  const source = readFileSync(file, 'utf8');
  const at = source.indexOf(firstBodyLine);
  assert.ok(at >= 0, `${firstBodyLine} is in ${file}`);
  return source.slice(at);
}
const paragraphsOf = (body: string): string[] =>
  body
    .split(/\r?\n(?:[ \t]*\r?\n)+/)
    .map((p) => p.replace(/(?:\r?\n)+$/, ''))
    .filter((p) => p.trim() !== '');

/** Every block's text is the next slice of the body; only blank-line separators lie between. */
function assertRoundTrip(story: ParsedStory, body: string): void {
  let cursor = 0;
  for (const block of story.blocks) {
    const at = body.indexOf(block.text, cursor);
    assert.ok(at >= 0, `block ${JSON.stringify(block.text.slice(0, 40))} found in order`);
    assert.equal(
      body.slice(cursor, at).trim(),
      '',
      `nothing but blank lines dropped before ${JSON.stringify(block.text.slice(0, 40))}`,
    );
    cursor = at + block.text.length;
  }
  assert.equal(body.slice(cursor).trim(), '', 'nothing dropped at the end');
  assert.deepEqual(
    story.blocks.map((b) => b.text),
    paragraphsOf(body),
    'joined back, the blocks are the body paragraphs byte for byte',
  );
}

describe('parseStory: the author\u2019s words round-trip byte for byte', () => {
  const cases: [string, string][] = [
    [SAMPLE_STORY, 'The ledger hung on a nail'],
    [fixture('fanfic-header.txt'), 'The bells had been silent'],
    [fixture('untitled.txt'), 'Rain.'],
    [fixture('crlf.txt'), 'The ferry left at six'],
    [fixture('chapters.md'), '# One: The Survey'],
  ];
  for (const [file, first] of cases) {
    test(path.basename(file), () => assertRoundTrip(parseStory(file), bodyOf(file, first)));
  }

  test('curly quotes, ellipses, dashes, double spaces and indentation are kept as typed', () => {
    const story = parseStory(fixture('fanfic-header.txt'));
    const texts = story.blocks.map((b) => b.text);
    assert.ok(texts.includes('“You’re sure?” Ines asked, and then—because she could not help it—“Because I’m  not.”'));
    assert.ok(texts.includes('“Sure is a big word…” Mara said.  "Ask me when I\'m down."'));
    assert.ok(
      texts.includes(
        '   Indented, the way some people write first lines.\nHard-wrapped lines stay\nexactly as they were.',
      ),
    );
  });
});

describe('parseStory: plain-text header block', () => {
  test('reads loose keys, the By line, unknown keys and free lines', () => {
    const { meta, format } = parseStory(fixture('fanfic-header.txt'));
    assert.equal(format, 'text');
    assert.equal(meta.title, 'The Weight of Small Bells');
    assert.equal(meta.author, 'R. Quill');
    assert.equal(meta.rating, 'R', '"Rating : R" with a space before the colon');
    assert.equal(meta.pairing, 'Mara/Ines');
    assert.equal(meta.category, 'Drama, Romance');
    assert.equal(meta.warnings, 'Grief, a death in the past');
    assert.equal(meta.extra['Timeline/ Spoilers'], 'after the flood');
    assert.equal(meta.extra['Beta Reader'], 'Thanks to Pell', 'unknown keys are kept, not dropped');
    assert.deepEqual(meta.notes, ['A short story, complete.']);
  });

  test('"By Some Author" and CRLF line endings', () => {
    const { meta } = parseStory(fixture('crlf.txt'));
    assert.equal(meta.title, 'Crossing');
    assert.equal(meta.author, 'Jun Ha');
  });

  test('a story without a header starts at its first line, even a short one', () => {
    const story = parseStory(fixture('untitled.txt'));
    assert.equal(story.meta.title, undefined);
    assert.equal(story.blocks[0]!.text, 'Rain.');
  });

  test('an opening line that merely contains a colon is story, not header', () => {
    const story = parseStoryText('Note: the rain had stopped.\n\nShe went out.\n', 'x.txt');
    assert.equal(story.blocks.length, 2);
    assert.deepEqual(story.meta.extra, {});
  });

  test('keys match whatever the case and spacing', () => {
    const { meta } = parseStoryText('TITLE :  Loud\nauthor:quiet one\nRATING: nc-17\n\nBody.\n', 'x.txt');
    assert.equal(meta.title, 'Loud');
    assert.equal(meta.author, 'quiet one');
    assert.equal(meta.rating, 'nc-17');
  });

  test('header lines may be spread over several blank-separated paragraphs', () => {
    const { meta, blocks } = parseStoryText(
      'Title: Apart\n\nAuthor: Someone\n\nOne-shot, complete.\n\nIt began.\n',
      'x.txt',
    );
    assert.equal(meta.title, 'Apart');
    assert.equal(meta.author, 'Someone');
    assert.deepEqual(meta.notes, ['One-shot, complete.']);
    assert.deepEqual(
      blocks.map((b) => b.text),
      ['It began.'],
    );
  });
});

describe('parseStory: Markdown', () => {
  const story = parseStory(fixture('chapters.md'));

  test('front matter gives the metadata; unknown keys are kept', () => {
    assert.equal(story.format, 'markdown');
    assert.equal(story.meta.title, 'A Map of Ordinary Places');
    assert.equal(story.meta.author, 'Lena Ortiz');
    assert.equal(story.meta.rating, 'M');
    assert.equal(story.meta.category, 'Fantasy, Literary');
    assert.equal(story.meta.extra['fandom'], 'Original Work');
  });

  test('# and ## headings become chapter headings; ***, --- are scene breaks', () => {
    assert.deepEqual(
      story.blocks.map((b) => (b.kind === 'heading' ? `h${b.level}:${b.title}` : b.kind)),
      [
        'h1:One: The Survey',
        'paragraph',
        'paragraph',
        'scene-break',
        'paragraph',
        'h2:Two: The Argument',
        'paragraph',
        'scene-break',
        'paragraph',
      ],
    );
  });

  test('emphasis becomes HTML, raw HTML is escaped, quotes are not "smartened"', () => {
    const first = story.blocks[1]!;
    assert.equal(first.kind, 'paragraph');
    assert.match((first as { html: string }).html, /<em>Halloway<\/em>.*<strong>the map's<\/strong>/);
    const second = story.blocks[2] as { html: string };
    assert.match(second.html, /&lt;tag&gt; and an &amp; ampersand/);
    assert.doesNotMatch(second.html, /<tag>/);
  });

  test('a heading directly above its paragraph is split off without losing a byte', () => {
    const text = '# Chapter One\nIt was late.\n\nThen it was early.\n';
    const s = parseStoryText(text, 'c.md');
    assert.deepEqual(
      s.blocks.map((b) => b.text),
      ['# Chapter One', 'It was late.', 'Then it was early.'],
    );
  });

  test('plain-text stories are escaped, not interpreted', () => {
    const s = parseStoryText('Title: T\n\nA *star* and <b>bold</b> & co.\n', 'x.txt');
    assert.equal((s.blocks[0] as { html: string }).html, 'A *star* and &lt;b&gt;bold&lt;/b&gt; &amp; co.');
  });
});

describe('scene breaks', () => {
  for (const line of ['* * *', '***', '#', '~~~', '---', 'o0o', 'oOo', '   ❖   ', '* * * * *', '—  —  —', '⁂']) {
    test(`${JSON.stringify(line)} is a scene break`, () => assert.equal(isSceneBreak(line), true));
  }
  for (const line of ['…', '—', 'ooo', '000', 'Oh.', '*Sigh.*', '# Chapter 2', '"…"']) {
    test(`${JSON.stringify(line)} is text`, () => assert.equal(isSceneBreak(line), false));
  }
  test('scene break blocks keep the author\u2019s marker', () => {
    const s = parseStory(fixture('fanfic-header.txt'));
    assert.deepEqual(
      s.blocks.filter((b) => b.kind === 'scene-break').map((b) => b.text),
      ['* * *', 'o0o'],
    );
  });
});

describe('countWords', () => {
  test('contractions, hyphens and curly apostrophes are one word; punctuation is none', () => {
    assert.equal(countWords('“You’re sure?” Ines asked — well-known… 12 bells.'), 7);
    assert.equal(countWords('* * *'), 0);
  });
});

describe('bad input: one clear line naming the file', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'feuilleton-parse-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, data: string | Buffer): string => {
    const file = path.join(dir, name);
    writeFileSync(file, data);
    return file;
  };
  const cases: [string, () => string, RegExp][] = [
    ['empty file', () => write('empty.txt', ''), /is empty/],
    ['only blank lines', () => write('blank.txt', '\n  \n\n'), /has no text/],
    ['binary file', () => write('bin.txt', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0x0d])), /binary/],
    ['invalid UTF-8', () => write('latin1.txt', Buffer.from('caf\xe9 au lait\n', 'latin1')), /not valid UTF-8/],
    ['header but no body', () => write('header.txt', 'Title: Nothing Yet\nBy Nobody\n'), /no story text after it/],
    ['missing file', () => path.join(dir, 'nope.txt'), /cannot be read \(no such file\)/],
    [
      'a directory',
      () => (mkdirSync(path.join(dir, 'sub'), { recursive: true }), path.join(dir, 'sub')),
      /is a directory/,
    ],
    ['unclosed front matter', () => write('open.md', '---\ntitle: x\n\nBody.\n'), /never closed/],
    ['front matter that is not YAML', () => write('bad.md', '---\ntitle: [x\n---\n\nBody.\n'), /not valid YAML/],
  ];
  for (const [name, make, message] of cases) {
    test(name, () => {
      const file = make();
      assert.throws(
        () => parseStory(file),
        (err: unknown) => {
          assert.ok(err instanceof StoryError);
          assert.match(err.message, message);
          assert.ok(err.message.startsWith(`story file ${file}:`), err.message);
          assert.doesNotMatch(err.message, /\n/, 'one line');
          return true;
        },
      );
    });
  }
});
