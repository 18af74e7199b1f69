/**
 * Memory of the engine host, side by side in one run: for 1, 4 and 8 test files at once, a fresh
 * process starts a test run (the vitest-app fixture's migrations), leases that many databases,
 * runs a small workload on each through pg and reads its resident set size. Per engine is the
 * growth over the same process before the host started, divided by the engines. The anchor is
 * PGlite itself: one `PGlite.create()` loading a dumped data directory, in a fresh process.
 *
 *   npm run build && npm run bench:memory
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DIST_INDEX, machine, printTable, requireBuild } from './support.js';

requireBuild();
const MIGRATIONS = path.resolve('fixtures/vitest-app/migrations');
const FILES = (process.env.MEMORY_FILES ?? '1,4,8').split(',').map(Number);

interface Figures {
  /** RSS with the package loaded, before any engine. */
  baseMb: number;
  /** RSS with the run started: template ready, the host's spare database started. */
  readyMb?: number;
  rssMb: number;
  peakMb: number;
}

function inChild(script: string): Figures {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    cwd: path.resolve('.'),
  });
  return JSON.parse(out.trim().split('\n').at(-1) ?? '') as Figures;
}

const rss = `const rssMb = () => process.memoryUsage.rss() / 2 ** 20;
  const peakMb = () => process.resourceUsage().maxRSS / 1024;`;

function hostWith(files: number): Figures {
  return inChild(`
    import pg from 'pg';
    ${rss}
    const { startTestRun, TestFileDatabase } = await import(${JSON.stringify(DIST_INDEX)});
    const baseMb = rssMb();
    const run = await startTestRun(
      { migrations: ${JSON.stringify(MIGRATIONS)}, maxDatabases: ${files}, memoryBudgetMb: 1e6 },
      { parallelFiles: 1 },
    );
    const readyMb = rssMb();
    const databases = await Promise.all(
      Array.from({ length: ${files} }, () => TestFileDatabase.open(run.config)),
    );
    await Promise.all(databases.map(async (database, file) => {
      const client = new pg.Client({ connectionString: database.connectionString });
      await client.connect();
      for (let test = 0; test < 20; test++) {
        await database.beforeTest();
        await client.query('CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text)');
        await client.query("INSERT INTO notes (body) SELECT repeat('x', 200) FROM generate_series(1, 500)");
        await client.query('SELECT count(*), max(length(body)) FROM notes');
        await database.afterTest({ failed: false, label: 'memory' });
      }
      await client.end();
    }));
    const figures = { baseMb, readyMb, rssMb: rssMb(), peakMb: peakMb() };
    for (const database of databases) await database.close();
    await run.close();
    console.log(JSON.stringify(figures));
  `);
}

/** A PGlite data directory dumped once (untimed), for the anchor to load as users do. */
function pgliteDump(): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pglite-oxide-bench-memory-')), 'dump.tar');
  execFileSync(process.execPath, [
    '--input-type=module',
    '-e',
    `
    import fs from 'node:fs';
    const { PGlite } = await import('@electric-sql/pglite');
    const db = await PGlite.create();
    const dump = await db.dumpDataDir('none');
    fs.writeFileSync(${JSON.stringify(file)}, Buffer.from(await dump.arrayBuffer()));
    await db.close();`,
  ]);
  return file;
}

function pgliteAnchor(dump: string): Figures {
  return inChild(`
    import fs from 'node:fs';
    ${rss}
    const { PGlite } = await import('@electric-sql/pglite');
    const baseMb = rssMb();
    const db = await PGlite.create({ loadDataDir: new Blob([fs.readFileSync(${JSON.stringify(dump)})]) });
    await db.exec('CREATE TABLE notes (id serial PRIMARY KEY, body text)');
    await db.exec("INSERT INTO notes (body) SELECT repeat('x', 200) FROM generate_series(1, 500)");
    console.log(JSON.stringify({ baseMb, rssMb: rssMb(), peakMb: peakMb() }));
    await db.close();
  `);
}

console.log('Memory of the engine host: databases leased at once, each running a small workload');
console.log(machine());
const dump = pgliteDump();
const anchor = pgliteAnchor(dump);
fs.rmSync(path.dirname(dump), { recursive: true, force: true });
const mb = (value: number | undefined) => (value === undefined ? '' : value.toFixed(0));
const rows: Array<Array<string | number>> = [
  [
    'anchor: one PGlite loading a dumped data dir',
    1,
    mb(anchor.baseMb),
    '',
    mb(anchor.rssMb),
    mb(anchor.peakMb),
    mb(anchor.rssMb - anchor.baseMb),
    '',
  ],
];
let one: Figures | undefined;
for (const files of FILES) {
  const figures = hostWith(files);
  if (files === 1) one = figures;
  rows.push([
    `engine host, ${files} file(s) at once`,
    files,
    mb(figures.baseMb),
    mb(figures.readyMb),
    mb(figures.rssMb),
    mb(figures.peakMb),
    // Everything the run added, shared parts (the compiled engine, the template) included.
    mb((figures.rssMb - figures.baseMb) / files),
    // What each engine past the first adds: the figure the memory budget counts.
    one && files > 1 ? mb((figures.rssMb - one.rssMb) / (files - 1)) : '',
  ]);
}
printTable(
  [
    'subject',
    'engines',
    'loaded MB',
    'run started MB',
    'RSS MB',
    'peak RSS MB',
    'run MB / engine',
    'MB per added engine',
  ],
  rows,
);
console.log('goal: <= 120 MB per engine; the memory budget counts 128 MB per database');
