// The shapes that flow story → installments → render. Every `text` field is the author's
// source text exactly as written (no trimming, quote or space changes): it is what the
// round-trip test compares and what the plain-text renderings print.

export type Block =
  /** `html` is the paragraph as safe inline HTML: escaped, with Markdown emphasis kept for .md stories. */
  | { kind: 'paragraph'; text: string; html: string }
  /** A scene-break marker line (`* * *`, `#`, `~~~`, `o0o`…); `text` keeps the author's marker. */
  | { kind: 'scene-break'; text: string }
  /** A chapter heading; `title` is the heading without Markdown `#` marks. */
  | { kind: 'heading'; text: string; title: string; level: number; html: string };

export interface StoryMeta {
  title?: string;
  author?: string;
  summary?: string;
  rating?: string;
  category?: string;
  pairing?: string;
  warnings?: string;
  /** Header keys we do not know, kept verbatim (key as written, trimmed). */
  extra: Record<string, string>;
  /** Header lines that are not `Key: value`, such as "A short story, complete." */
  notes: string[];
  /** Every `Key: value` of the header or front matter, key as written, in the author's order (first of each key). */
  fields: Array<{ key: string; value: string }>;
}

export interface ParsedStory {
  file: string;
  format: 'text' | 'markdown';
  meta: StoryMeta;
  blocks: Block[];
}

export interface Installment {
  number: number;
  title: string;
  blocks: Block[];
  wordCount: number;
  minutes: number;
  /** sha256 (hex) of the blocks' source text; identifies the frozen text. */
  hash: string;
  /** Index in the story's block list of this installment's first block. */
  firstBlock: number;
  blockCount: number;
}

export interface StoredInstallment extends Installment {
  /** Set once the text was sent to anyone or published: from then on it never changes. */
  frozenAt: string | null;
  publishedAt: string | null;
}
