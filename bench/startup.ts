// How fast the built CLI answers `--help`, against a bare `node -e 0` measured in the same
// run: paired rounds, alternating which goes first, medians compared. Also what `npm start`
// pays before serving when dist/ is already built (the staleness check of its prestart).
//   node --import tsx bench/startup.ts [rounds=21]
// Target: `feuilleton --help` under 2× bare node.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { PACKAGE_ROOT } from '../src/config.ts';

const ROUNDS = Number(process.argv[2] ?? 21);
const TARGET_RATIO = 2;
const CLI = path.join(PACKAGE_ROOT, 'dist', 'cli.js');
const BUILD_IF_STALE = path.join(PACKAGE_ROOT, 'scripts', 'build-if-stale.mjs');

function run(args: string[]): number {
  const start = performance.now();
  const r = spawnSync(process.execPath, args, {
    cwd: PACKAGE_ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  const ms = performance.now() - start;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// Builds dist/ now if it is stale, so no round pays for it.
run([BUILD_IF_STALE]);

const bare: number[] = [];
const help: number[] = [];
const check: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  if (i % 2 === 0) {
    bare.push(run(['-e', '0']));
    help.push(run([CLI, '--help']));
  } else {
    help.push(run([CLI, '--help']));
    bare.push(run(['-e', '0']));
  }
  check.push(run([BUILD_IF_STALE]));
}

const ratio = median(help) / median(bare);
const ms = (x: number) => `${x.toFixed(0)} ms`;
console.log(`${ROUNDS} paired rounds, medians:`);
console.log(`  node -e 0                      ${ms(median(bare))}`);
console.log(`  node dist/cli.js --help        ${ms(median(help))}`);
console.log(
  `  ratio                          ${ratio.toFixed(2)} (${ratio < TARGET_RATIO ? 'under' : 'OVER'} the ${TARGET_RATIO}× target)`,
);
console.log(`  npm start's staleness check    ${ms(median(check))} (dist/ up to date: no build)`);
