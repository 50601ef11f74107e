#!/usr/bin/env node
// `npm start` runs this first: it compiles TypeScript only when dist/ is missing or older
// than a source file or the build settings, so a start after the first takes no build.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const mtime = (file) => {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -Infinity;
  }
};
const sources = [
  ...readdirSync(path.join(root, 'src'), { recursive: true }).map((f) => path.join(root, 'src', f)),
  ...['package.json', 'tsconfig.json', 'tsconfig.build.json'].map((f) => path.join(root, f)),
];
// tsc rewrites every output on each build, so the entry point's age is the build's.
const built = mtime(path.join(root, 'dist', 'cli.js'));
const stale = sources.find((f) => mtime(f) > built);
if (stale !== undefined) {
  process.stderr.write(
    `building dist/ (${built === -Infinity ? 'not built yet' : `${path.relative(root, stale)} changed`})\n`,
  );
  const r = spawnSync(
    process.execPath,
    [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'tsconfig.build.json')],
    { stdio: 'inherit' },
  );
  process.exit(r.status ?? 1);
}
