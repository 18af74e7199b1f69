// Per-test reset figures, side by side in one run on one ~10-table template: starting an
// in-memory engine from the template, resetting it by snapshot restore and by reopening, next to
// the usual alternatives (TRUNCATE everything and reseed; BEGIN/ROLLBACK, which leaves sequences
// advanced).
// Usage: npx tsx bench/reset.ts [--cycles N]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { prepareTemplate } from '../src/index.js';
import { createResettableEngine, openMemoryEngine } from '../src/runtime/memory-engine.js';
import { machine, median, printTable } from './support.js';

const cycles = Number(process.argv[process.argv.indexOf('--cycles') + 1]) || 100;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pglite-oxide-reset-'));

const TABLES = [
  'customers',
  'addresses',
  'products',
  'categories',
  'orders',
  'order_items',
  'payments',
  'shipments',
  'reviews',
  'audit_log',
];
const schema = TABLES.map(
  (table) =>
    `CREATE TABLE ${table} (id serial PRIMARY KEY, name text NOT NULL, amount numeric(10,2), ` +
    `created_at timestamptz NOT NULL DEFAULT now(), note text);\nCREATE INDEX ${table}_name ON ${table} (name);`,
).join('\n');
const seed = TABLES.map(
  (table) =>
    `INSERT INTO ${table} (name, amount) SELECT '${table} ' || n, n * 1.5 FROM generate_series(1, 20) n;`,
).join('\n');
fs.mkdirSync(path.join(scratch, 'migrations'));
fs.writeFileSync(path.join(scratch, 'migrations', '1_schema.sql'), schema);
fs.writeFileSync(path.join(scratch, 'seed.sql'), seed);

/** What a typical test does to the database before its reset. */
async function typicalTest(pg: PGlite): Promise<void> {
  await pg.exec(`
    INSERT INTO customers (name) VALUES ('test customer');
    INSERT INTO orders (name, amount) SELECT 'order ' || n, n FROM generate_series(1, 5) n;
    UPDATE products SET amount = amount * 2 WHERE id < 5;
    DELETE FROM reviews WHERE id > 15;
    INSERT INTO audit_log (name) VALUES ('did things');`);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const ms = (value: number) => `${value.toFixed(1)} ms`;
const rows: Array<Array<string | number>> = [];
const addRow = (name: string, samples: number[], note = '') =>
  rows.push([name, samples.length, ms(median(samples)), ms(percentile(samples, 90)), note]);

const template = await prepareTemplate({
  migrations: path.join(scratch, 'migrations'),
  seed: path.join(scratch, 'seed.sql'),
});
const engineOptions = { templatePgdata: template.pgdata, runtimeRoot: template.runtimeRoot };

// Start: the first engine of the process pays for compiling the module and reading the template.
const starts: number[] = [];
for (let i = 0; i < 6; i++) {
  const started = performance.now();
  const pg = await openMemoryEngine(engineOptions);
  await pg.query('SELECT 1');
  starts.push(performance.now() - started);
  await pg.close();
}
addRow('memory engine start to first query (2nd+)', starts.slice(1), `1st: ${ms(starts[0]!)}`);

const engine = await createResettableEngine(engineOptions);
const snapshotResets: number[] = [];
const memoryPhase: number[] = [];
const verifyPhase: number[] = [];
let reopened = 0;
for (let i = 0; i < cycles; i++) {
  await typicalTest(engine.pglite);
  const report = await engine.reset();
  if (report.path === 'snapshot') {
    snapshotResets.push(report.ms);
    memoryPhase.push(report.restore!.phases.memory);
    verifyPhase.push(report.restore!.phases.verify);
  } else reopened++;
}
const covered = (engine.snapshot?.memory.byteLength ?? 0) / 2 ** 20;
addRow(
  'snapshot reset',
  snapshotResets,
  `memory (${covered.toFixed(0)} MB compared) p50 ${ms(median(memoryPhase))}, ` +
    `verify p50 ${ms(median(verifyPhase))}${reopened ? `; ${reopened} resets fell back` : ''}`,
);

const reopenResets: number[] = [];
for (let i = 0; i < Math.min(cycles, 10); i++) {
  await typicalTest(engine.pglite);
  reopenResets.push((await engine.reset({ path: 'reopen' })).ms);
}
addRow('fallback: reopen from the template', reopenResets, 'exact');
await engine.close();

const anchor = await openMemoryEngine(engineOptions);
const truncates: number[] = [];
for (let i = 0; i < Math.min(cycles, 30); i++) {
  await typicalTest(anchor);
  const started = performance.now();
  await anchor.exec(`TRUNCATE ${TABLES.join(', ')} RESTART IDENTITY CASCADE;\n${seed}`);
  truncates.push(performance.now() - started);
}
addRow('anchor: TRUNCATE all tables + reseed', truncates, 'exact for data, not for DDL');

const rollbacks: number[] = [];
for (let i = 0; i < cycles; i++) {
  let started = performance.now();
  await anchor.exec('BEGIN');
  let elapsed = performance.now() - started;
  await typicalTest(anchor);
  started = performance.now();
  await anchor.exec('ROLLBACK');
  elapsed += performance.now() - started;
  rollbacks.push(elapsed);
}
addRow('anchor: BEGIN/ROLLBACK', rollbacks, 'sequences stay advanced');
await anchor.close();

console.log(
  `bench/reset: ${TABLES.length}-table template, 20 rows each; ${machine()}; load ${os.loadavg()[0]!.toFixed(1)}`,
);
printTable(['case', 'runs', 'p50', 'p90', 'note'], rows);
console.log('goal: reset <= 20 ms');
fs.rmSync(scratch, { recursive: true, force: true });
