// The CLI as an operator runs it: a separate process (so it has its own pid, database
// connection and exit code), without the developer's FEUILLETON_* settings.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/config.ts';

export const CLI = path.join(PACKAGE_ROOT, 'src', 'cli.ts');
/**
 * The compiled CLI, as operators run it: `npm test` builds it first. Starting it takes a
 * fraction of what compiling the sources through tsx in every spawned process did.
 */
export const BUILT_CLI = path.join(PACKAGE_ROOT, 'dist', 'cli.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { NO_COLOR: '1' };
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FEUILLETON_')) env[k] = v;
  return env;
}

export interface CliProcess {
  child: ChildProcess;
  /** stdout and stderr as they came, interleaved. */
  output(): string;
  /** Resolves when the process has exited, with what it printed. */
  done: Promise<CliResult>;
}

/**
 * Starts `feuilleton ARGS` and hands back the child (to signal it) with its output.
 * `node` is what comes before ARGS: by default the built CLI.
 */
export function spawnCli(
  args: string[],
  opts: { cwd?: string; node?: string[]; env?: NodeJS.ProcessEnv } = {},
): CliProcess {
  const child = spawn(process.execPath, [...(opts.node ?? [BUILT_CLI]), ...args], {
    cwd: opts.cwd ?? PACKAGE_ROOT,
    env: { ...cleanEnv(), ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => ((stdout += c), (output += c)));
  child.stderr.setEncoding('utf8').on('data', (c: string) => ((stderr += c), (output += c)));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, output: () => output, done };
}

/** Runs `feuilleton ARGS` asynchronously, so this process keeps answering (its locks, its db) meanwhile. `env` adds to the clean environment. */
export function runCli(args: string[], cwd = PACKAGE_ROOT, env?: NodeJS.ProcessEnv): Promise<CliResult> {
  return spawnCli(args, { cwd, env }).done;
}
