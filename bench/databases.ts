// What another database costs: each is served by an engine of its own, started when a client
// first asks for it. Side by side in one run: the proxy on a root on disk (`startProxy`,
// `serve --data`), a test file's database of the engine host (in memory, as the presets serve
// it), and a native PostgreSQL doing the same.
// Usage: npm run bench:databases [-- --runs N]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startNativePostgres } from './native-postgres.js';
import { DIST_INDEX, machine, median, printTable, requireBuild } from './support.js';

requireBuild();
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 3;
const ox = (await import(DIST_INDEX)) as typeof import('../src/index.js');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pglite-oxide-bench-databases-'));

interface Figures {
  /** First connection to a database the cluster has (template1): connect + SELECT 1. */
  existingMs: number;
  /** CREATE DATABASE in the main database. */
  createMs: number;
  /** First connection to the new database. */
  firstConnectMs: number;
  /** A later connection, its engine running. */
  againMs: number;
  /** Resident memory the two extra engines added. */
  rssMb: number | null;
}

const withUrl = (url: string, database: string) => url.replace(/\/[^/?]+(\?|$)/, `/${database}$1`);

async function timeQuery(url: string, sql = 'SELECT 1'): Promise<number> {
  const started = performance.now();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(sql);
  const ms = performance.now() - started;
  await client.end();
  return ms;
}

function rss(): number {
  globalThis.gc?.();
  return process.memoryUsage().rss / 1024 / 1024;
}

async function measure(url: string, run: number, inProcess: boolean): Promise<Figures> {
  const before = inProcess ? rss() : 0;
  const existingMs = await timeQuery(withUrl(url, 'template1'));
  const name = `bench_${run}`;
  const createMs = await timeQuery(url, `CREATE DATABASE ${name}`);
  const firstConnectMs = await timeQuery(withUrl(url, name));
  const againMs = await timeQuery(withUrl(url, name));
  const rssMb = inProcess ? rss() - before : null;
  return { existingMs, createMs, firstConnectMs, againMs, rssMb };
}

async function onDiskRoot(run: number): Promise<Figures> {
  const paths = await ox.installAndInitIn(path.join(scratch, `root-${run}`));
  const proxy = await ox.startProxy({ paths, port: 0 });
  try {
    return await measure(proxy.connectionString, run, true);
  } finally {
    await proxy.close();
  }
}

async function testFileDatabase(run: number): Promise<Figures> {
  const template = await ox.prepareTemplate({ cacheDir: path.join(scratch, 'cache') });
  const host = await ox.startEngineHost({ template, maxDatabases: 1, spare: 0 });
  const lease = await ox.leaseDatabase(host.address);
  try {
    return await measure(lease.connectionString, run, true);
  } finally {
    await lease.release();
    await host.close();
  }
}

async function native(run: number): Promise<Figures | null> {
  const server = await startNativePostgres();
  if (!server) return null;
  try {
    return await measure(server.url, run, false);
  } finally {
    await server.stop();
  }
}

const cases: Array<[string, (run: number) => Promise<Figures | null>]> = [
  ['startProxy on a root on disk (serve --data)', onDiskRoot],
  ['a test file database (in memory, presets)', testFileDatabase],
  ['anchor: native PostgreSQL', native],
];

console.log(`bench:databases, ${runs} runs each, median; ${machine()}`);
const rows: Array<Array<string | number>> = [];
for (const [label, fn] of cases) {
  const figures: Figures[] = [];
  for (let run = 0; run < runs; run++) {
    const result = await fn(run);
    if (result) figures.push(result);
  }
  if (figures.length === 0) {
    rows.push([label, 'n/a', 'n/a', 'n/a', 'n/a', 'n/a']);
    continue;
  }
  const med = (key: keyof Figures) => {
    const values = figures.map((figure) => figure[key]).filter((value): value is number => value !== null);
    return values.length > 0 ? median(values).toFixed(1) : '-';
  };
  rows.push([label, med('existingMs'), med('createMs'), med('firstConnectMs'), med('againMs'), med('rssMb')]);
}
printTable(
  [
    '',
    'template1 first connect ms',
    'CREATE DATABASE ms',
    'new db first connect ms',
    'again ms',
    'RSS +MB (2 dbs)',
  ],
  rows,
);
fs.rmSync(scratch, { recursive: true, force: true });
