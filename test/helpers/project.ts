// A throwaway story project in a temp folder: config file, story, data dir. Tests get the
// real config loader, story parser and SQLite file, isolated from each other.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { openApp, type App } from '../../src/app.ts';
import { loadConfig, PACKAGE_ROOT, type Config } from '../../src/config.ts';

export const SAMPLE_STORY = path.join(PACKAGE_ROOT, 'story', 'the-lamplighters-ledger.txt');

export interface Project {
  dir: string;
  configPath: string;
  config(): Config;
  open(): App;
  writeStory(text: string): void;
  cleanup(): void;
}

export function makeProject(
  opts: { settings?: Record<string, unknown>; story?: string; storyFile?: string } = {},
): Project {
  const dir = mkdtempSync(path.join(tmpdir(), 'feuilleton-test-'));
  const storyFile = opts.storyFile ?? 'story.txt';
  const storyPath = path.join(dir, storyFile);
  if (opts.story !== undefined) writeFileSync(storyPath, opts.story);
  else cpSync(SAMPLE_STORY, storyPath);
  const settings = {
    story: { file: storyFile },
    baseUrl: 'http://127.0.0.1:3000',
    schedule: { enabled: false },
    ...opts.settings,
  };
  const configPath = path.join(dir, 'feuilleton.yaml');
  writeFileSync(configPath, stringify(settings));
  // Keep the developer's environment (FEUILLETON_SMTP_URL…) out of test configs.
  const config = () => loadConfig({ configPath, env: {} });
  return {
    dir,
    configPath,
    config,
    open: () => openApp(config()),
    writeStory: (text) => writeFileSync(storyPath, text),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A story of `paragraphs` paragraphs of made-up prose, deterministic for a seed. */
export function generatedStory(
  paragraphs: number,
  seed = 1,
  header = 'Title: A Generated Tale\nBy Test Author\n',
): string {
  let x = seed;
  const rnd = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
  const words = [
    'lantern',
    'harbour',
    'quiet',
    'ledger',
    'rope',
    'tide',
    'she',
    'said',
    'the',
    'and',
    'of',
    'night',
    'salt',
    'window',
    'gull',
    'ink',
  ];
  const paras: string[] = [];
  for (let i = 0; i < paragraphs; i++) {
    const n = 20 + Math.floor(rnd() * 80);
    const w = Array.from({ length: n }, () => words[Math.floor(rnd() * words.length)]!);
    w[0] = w[0]!.charAt(0).toUpperCase() + w[0]!.slice(1);
    paras.push(`${w.join(' ')}.`);
  }
  return `${header}\n${paras.join('\n\n')}\n`;
}
