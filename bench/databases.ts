// What another database costs: each is served by an engine of its own, started when a client
// first asks for it. Side by side in one run: the proxy on a root on disk (`startProxy`,
// `serve --data`), a test file's database of the engine host (in memory, as the presets serve
// it), and a native PostgreSQL doing the same.
// With `-- template`: CREATE DATABASE ... TEMPLATE of a migrated database (50 tables, ~10 MB),
// run from a connection to template1, the first connection to the copy, and the memory an open
// database adds, beside a native PostgreSQL.
// Usage: npm run bench:databases [-- --runs N] [-- template]
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

if (process.argv.includes('template')) {
  await templateBench();
  fs.rmSync(scratch, { recursive: true, force: true });
  process.exit(0);
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

interface TemplateFigures {
  copyMs: number;
  firstConnectMs: number;
  /** What one more open database adds: the process's RSS (proxy), the backend's (native). */
  memoryMb: number | null;
}

/** A database of 50 tables, ~10 MB of rows, made a template. */
async function migrateTemplate(url: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query('CREATE DATABASE tmpl');
  await admin.end();
  const tmpl = new pg.Client({ connectionString: withUrl(url, 'tmpl') });
  await tmpl.connect();
  for (let table = 0; table < 50; table++) {
    await tmpl.query(
      `CREATE TABLE t${table} (id int primary key, note text); ` +
        `INSERT INTO t${table} SELECT g, repeat('x', 100) FROM generate_series(1, 1500) g`,
    );
  }
  await tmpl.query('ALTER DATABASE tmpl IS_TEMPLATE true');
  await tmpl.end();
}

async function measureTemplate(url: string, inProcess: boolean, run: number): Promise<TemplateFigures> {
  const admin = new pg.Client({ connectionString: withUrl(url, 'template1') });
  await admin.connect();
  const name = `copy_${run}`;
  const before = inProcess ? rss() : 0;
  let started = performance.now();
  await admin.query(`CREATE DATABASE ${name} TEMPLATE tmpl`);
  const copyMs = performance.now() - started;
  await admin.end();
  started = performance.now();
  const copy = new pg.Client({ connectionString: withUrl(url, name) });
  await copy.connect();
  await copy.query('SELECT count(*) FROM t49');
  const firstConnectMs = performance.now() - started;
  let memoryMb: number | null = inProcess ? rss() - before : null;
  if (!inProcess) {
    const pid = (await copy.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    memoryMb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  }
  await copy.end();
  return { copyMs, firstConnectMs, memoryMb };
}

async function templateBench(): Promise<void> {
  console.log(`bench:databases -- template, ${runs} copies each, median; ${machine()}`);
  const rows: Array<Array<string | number>> = [];
  const report = (label: string, figures: TemplateFigures[]) => {
    const med = (key: keyof TemplateFigures) => {
      const values = figures.map((figure) => figure[key]).filter((value): value is number => value !== null);
      return values.length > 0 ? median(values).toFixed(1) : '-';
    };
    rows.push([label, med('copyMs'), med('firstConnectMs'), med('memoryMb')]);
  };
  const paths = await ox.installAndInitIn(path.join(scratch, 'template-root'));
  const proxy = await ox.startProxy({ paths, port: 0 });
  try {
    await migrateTemplate(proxy.connectionString);
    const figures: TemplateFigures[] = [];
    for (let run = 0; run < runs; run++)
      figures.push(await measureTemplate(proxy.connectionString, true, run));
    report('startProxy on a root on disk (serve --data)', figures);
  } finally {
    await proxy.close();
  }
  const server = await startNativePostgres();
  if (server) {
    try {
      await migrateTemplate(server.url);
      const figures: TemplateFigures[] = [];
      for (let run = 0; run < runs; run++) figures.push(await measureTemplate(server.url, false, run));
      report('anchor: native PostgreSQL', figures);
    } finally {
      await server.stop();
    }
  } else rows.push(['anchor: native PostgreSQL', 'n/a', 'n/a', 'n/a']);
  printTable(
    ['', 'CREATE DATABASE ... TEMPLATE ms', 'first connect + query ms', 'memory +MB per open db'],
    rows,
  );
}
