/**
 * `pglite-oxide run -- <command>` wall time: with a warm cache, and on a machine that has never
 * run it (empty cache: initdb, then the template), beside what any Node CLI pays to start.
 *
 *   npm run bench:cli
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { median, requireBuild } from './support.js';

const CLI = path.resolve('dist/cli.js');
const RUNS = 5;

function wallMs(args: string[], env: NodeJS.ProcessEnv = {}): number {
  const started = performance.now();
  execFileSync(args[0]!, args.slice(1), { env: { ...process.env, ...env }, stdio: 'ignore' });
  return performance.now() - started;
}

function medianOf(args: string[], env: NodeJS.ProcessEnv = {}): number {
  wallMs(args, env);
  return median(Array.from({ length: RUNS }, () => wallMs(args, env)));
}

async function main(): Promise<void> {
  requireBuild();
  console.log(
    `pglite-oxide CLI bench: ${os.availableParallelism()} CPUs, Node ${process.version}, median of ${RUNS} (warm) runs, load average ${os.loadavg()[0]!.toFixed(1)}\n`,
  );
  const rows: Array<[string, number]> = [
    ['anchor: node -e 0', medianOf([process.execPath, '-e', '0'])],
    ['anchor: pglite-oxide --version (no engine)', medianOf([process.execPath, CLI, '--version'])],
    ['pglite-oxide run -- true, warm cache', medianOf([process.execPath, CLI, 'run', '--', 'true'])],
    [
      "pglite-oxide run -- psql -c 'select 1', warm cache",
      medianOf([process.execPath, CLI, 'run', '--', 'psql', '-qAtc', 'select 1']),
    ],
  ];
  const emptyCache = await fs.mkdtemp(path.join(os.tmpdir(), 'pglite-oxide-bench-cache-'));
  try {
    rows.push([
      'pglite-oxide run -- true, brand-new machine (empty cache)',
      wallMs([process.execPath, CLI, 'run', '--', 'true'], { PGLITE_OXIDE_CACHE_DIR: emptyCache }),
    ]);
  } finally {
    await fs.rm(emptyCache, { recursive: true, force: true });
  }
  for (const [label, ms] of rows) console.log(`${label.padEnd(62)} ${(ms / 1000).toFixed(2).padStart(6)} s`);
  console.log('\ngoal: run -- true <= 1.0 s with a warm cache');
}

await main();
