/**
 * A synthetic suite, 200 tests in 8 files against the fixture's 10-table schema, run as real
 * Vitest runs (files in parallel) for: this toolkit under each isolation; what people hand-roll
 * (one PGlite per file, TRUNCATE and reseed before each test); and native PostgreSQL with a
 * template database copied per test (the pgtestdb / IntegreSQL approach).
 *
 *   npm run build && npm run bench:suite
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NATIVE_BIN, type NativeServer, startNativePostgres } from './native-postgres.js';
import { VARIANTS as ALL_VARIANTS, suiteFile, type Variant } from './suite-variants.js';
import { median, requireBuild } from './support.js';

// SUITE_ONLY=jest-transaction,toolkit-none runs some of them (keep toolkit-none for the baseline).
const VARIANTS = process.env.SUITE_ONLY
  ? ALL_VARIANTS.filter((variant) => process.env.SUITE_ONLY!.split(',').includes(variant.name))
  : ALL_VARIANTS;

const FILES = 8;
const TESTS_PER_FILE = 25;
// Inside the package, so the generated project resolves pglite-oxide (self-reference), vitest and pg.
const ROOT = path.resolve('.bench/suite');
const FIXTURE = path.resolve('fixtures/vitest-app');
const SCHEMA = path.join(ROOT, 'schema');

/**
 * The fixture's migrations and seed without the file that creates extensions: the hand-rolled
 * PGlite and the native server may not have them (pgvector), and the tests never use that table.
 */
function writeSchema(): void {
  fs.rmSync(SCHEMA, { recursive: true, force: true });
  for (const part of ['migrations', 'seed']) {
    fs.mkdirSync(path.join(SCHEMA, part), { recursive: true });
    for (const name of fs.readdirSync(path.join(FIXTURE, part))) {
      const sql = fs.readFileSync(path.join(FIXTURE, part, name), 'utf8');
      if (!/CREATE EXTENSION/i.test(sql)) fs.writeFileSync(path.join(SCHEMA, part, name), sql);
    }
  }
}

interface Timing {
  file: string;
  kind: 'module' | 'start' | 'end';
  test: number;
  at: number;
}

interface Figures {
  wallMs: number;
  startupMs: number[];
  gapMs: number[];
  failed: string | null;
}

function writeProject(variant: Variant): string {
  const dir = path.join(ROOT, variant.name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'tests'), { recursive: true });
  const jest = variant.runner === 'jest';
  fs.writeFileSync(path.join(dir, jest ? 'jest.config.cjs' : 'vitest.config.ts'), variant.config(SCHEMA));
  if (variant.setup) fs.writeFileSync(path.join(dir, 'setup.ts'), variant.setup(SCHEMA));
  for (let file = 0; file < FILES; file++) {
    fs.writeFileSync(
      path.join(dir, 'tests', `file${file}.test.${jest ? 'js' : 'ts'}`),
      suiteFile(variant, file, TESTS_PER_FILE),
    );
  }
  return dir;
}

function runVariant(variant: Variant, env: NodeJS.ProcessEnv): Figures {
  const dir = writeProject(variant);
  const timings = path.join(dir, 'timings.jsonl');
  fs.rmSync(timings, { force: true });
  const started = performance.now();
  const command =
    variant.runner === 'jest'
      ? [
          path.resolve('node_modules/jest/bin/jest.js'),
          '--config',
          path.join(dir, 'jest.config.cjs'),
          '--silent',
        ]
      : [path.resolve('node_modules/vitest/vitest.mjs'), 'run', '--root', dir, '--reporter=dot'];
  const result = spawnSync(process.execPath, command, {
    env: { ...process.env, ...env, SUITE_TIMINGS: timings, SUITE_SCHEMA: SCHEMA, FORCE_COLOR: '0' },
    encoding: 'utf8',
  });
  const wallMs = performance.now() - started;
  const failed =
    result.status === 0
      ? null
      : (result.stdout + result.stderr).split('\n').filter(Boolean).slice(-6).join(' | ');
  const records = fs.existsSync(timings)
    ? fs
        .readFileSync(timings, 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Timing)
    : [];
  const startupMs: number[] = [];
  const gapMs: number[] = [];
  for (let file = 0; file < FILES; file++) {
    const mine = records.filter((record) => record.file === `file${file}`);
    const loaded = mine.find((record) => record.kind === 'module');
    const starts = mine.filter((record) => record.kind === 'start').sort((a, b) => a.test - b.test);
    const ends = mine.filter((record) => record.kind === 'end').sort((a, b) => a.test - b.test);
    if (loaded && starts[0]) startupMs.push(starts[0].at - loaded.at);
    for (let test = 1; test < starts.length; test++) {
      const previousEnd = ends.find((record) => record.test === test - 1);
      if (previousEnd) gapMs.push(starts[test]!.at - previousEnd.at);
    }
  }
  return { wallMs, startupMs, gapMs, failed };
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  requireBuild();
  fs.mkdirSync(ROOT, { recursive: true });
  writeSchema();
  let native: NativeServer | null = null;
  const env: NodeJS.ProcessEnv = {};
  if (VARIANTS.some((variant) => variant.needsNative)) {
    native = await startNativePostgres();
    if (native) env.NATIVE_URL = native.url;
  }
  try {
    // Builds (or finds) the migrated template, so every toolkit row below runs warm.
    const warmUp = VARIANTS.find((variant) => variant.name.startsWith('toolkit-'));
    if (warmUp) runVariant(warmUp, env);
    const results = new Map<string, Figures | null>();
    for (const variant of VARIANTS) {
      results.set(variant.name, variant.needsNative && !native ? null : runVariant(variant, env));
    }
    const baseline = results.get('toolkit-none');
    const baseGap = baseline ? median(baseline.gapMs) : 0;
    const bare = results.get('vitest-only');
    console.log(
      `bench:suite: ${FILES} files x ${TESTS_PER_FILE} tests, Vitest forks pool, files in parallel; ` +
        `Jest with its default workers; ${os.availableParallelism()} CPUs, Node ${process.version}, load average ${os.loadavg()[0]!.toFixed(1)}\n`,
    );
    const header = [
      'variant',
      'wall',
      'x no database',
      'tests/s',
      'file startup p50',
      'p90',
      'isolation/test p50',
      'p90',
    ];
    const rows = [header];
    for (const variant of VARIANTS) {
      const figures = results.get(variant.name);
      if (!figures) {
        rows.push([variant.label, `n/a: no server binaries in ${NATIVE_BIN}`, '', '', '', '', '', '']);
        continue;
      }
      if (figures.failed) {
        rows.push([variant.label, `failed: ${figures.failed.slice(0, 120)}`, '', '', '', '', '', '']);
        continue;
      }
      const isolation = figures.gapMs.map((gap) => gap - baseGap);
      rows.push([
        variant.label,
        `${(figures.wallMs / 1000).toFixed(2)} s`,
        bare && !bare.failed ? `${(figures.wallMs / bare.wallMs).toFixed(2)}x` : '',
        ((FILES * TESTS_PER_FILE) / (figures.wallMs / 1000)).toFixed(0),
        `${percentile(figures.startupMs, 50).toFixed(0)} ms`,
        `${percentile(figures.startupMs, 90).toFixed(0)} ms`,
        variant.name === 'toolkit-none'
          ? '(baseline)'
          : variant.sql === false
            ? ''
            : `${percentile(isolation, 50).toFixed(2)} ms`,
        variant.name === 'toolkit-none' || variant.sql === false
          ? ''
          : `${percentile(isolation, 90).toFixed(2)} ms`,
      ]);
    }
    const widths = header.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
    for (const row of rows) console.log(row.map((cell, column) => cell.padEnd(widths[column]!)).join('  '));
    console.log(
      `\nisolation/test is the time between one test ending and the next starting, minus the same for ` +
        `isolation 'none' (${baseGap.toFixed(2)} ms: Vitest's own per-test work).`,
    );
    console.log(
      "goals: isolation 'transaction' within 1.15x of no database; isolation <= 1 ms ('transaction'), <= 20 ms ('reset'); file startup <= 30 ms p50 (Vitest); the suite faster than native templates",
    );
  } finally {
    await native?.stop();
  }
}

await main();
