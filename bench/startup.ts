// Startup figures, side by side in one run: a brand-new root with no cached cluster, a new root
// with the cluster cached, and reopening an existing root, each in a fresh process, next to the
// engine's own PGlite.create() on an empty directory (which runs initdb).
// Usage: npm run bench:startup [-- --runs N]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DIST_INDEX, inFreshProcess, machine, median, printTable, requireBuild } from './support.js';

requireBuild();
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 3;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pglite-oxide-bench-'));
const ox = JSON.stringify(DIST_INDEX);

const firstQuery = (root: string, sql = 'SELECT 1') => `
  const { installAndInitIn, InteractiveRuntime } = await import(${ox});
  const runtime = await InteractiveRuntime.start(await installAndInitIn(${JSON.stringify(root)}));
  await runtime.execInteractive(${JSON.stringify(sql)});
  report();
  await runtime.close();`;

const cases: Array<{ name: string; goal: string; run: (i: number) => ReturnType<typeof inFreshProcess> }> = [
  {
    name: 'anchor: PGlite.create() on an empty dir',
    goal: '(~4.7 s)',
    run: (i) =>
      inFreshProcess(`
        const { PGlite } = await import('@electric-sql/pglite');
        const db = await PGlite.create({ dataDir: ${JSON.stringify(path.join(scratch, `anchor-${i}`))} });
        await db.query('SELECT 1');
        report();
        await db.close();`),
  },
  {
    name: 'new root, no cluster cached (first run ever)',
    goal: '<= 1.0 s, < 250 MB',
    run: (i) =>
      inFreshProcess(firstQuery(path.join(scratch, `cold-${i}`)), {
        PGLITE_OXIDE_CACHE_DIR: path.join(scratch, `cold-cache-${i}`),
      }),
  },
  {
    name: 'new root, cluster cached',
    goal: '<= 1.0 s',
    run: (i) =>
      inFreshProcess(firstQuery(path.join(scratch, `warm-${i}`)), {
        PGLITE_OXIDE_CACHE_DIR: path.join(scratch, 'cold-cache-0'),
      }),
  },
  {
    // A new root writes the cluster's ~1000 files: on a slow file system that is most of its time.
    name: "anchor: cp -r of a new root's cluster",
    goal: '(file system floor)',
    run: (i) => {
      const cluster = path.join(scratch, 'warm-0', 'pglite', 'base');
      const started = performance.now();
      execFileSync('cp', ['-r', cluster, path.join(scratch, `copy-${i}`)]);
      return { firstQueryMs: performance.now() - started, peakRssMb: 0 };
    },
  },
  {
    name: 'anchor: PGlite.create() reopening a cluster',
    goal: '(engine floor)',
    run: () =>
      inFreshProcess(`
        const { PGlite } = await import('@electric-sql/pglite');
        const db = await PGlite.create({
          dataDir: ${JSON.stringify(path.join(scratch, 'warm-0', 'pglite', 'base'))},
          startParams: [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'],
        });
        await db.query('SELECT 1');
        report();
        await db.close();`),
  },
  {
    name: 'reopen an existing root',
    goal: '<= 0.6 s',
    run: () =>
      inFreshProcess(firstQuery(path.join(scratch, 'warm-0')), {
        PGLITE_OXIDE_CACHE_DIR: path.join(scratch, 'cold-cache-0'),
      }),
  },
  {
    name: 'reopen a root with vector + pgcrypto created',
    goal: '= reopen',
    run: () =>
      inFreshProcess(firstQuery(withExtensions()), {
        PGLITE_OXIDE_CACHE_DIR: path.join(scratch, 'cold-cache-0'),
      }),
  },
  {
    name: '  ... and the first query using both',
    goal: '',
    run: () =>
      inFreshProcess(
        firstQuery(withExtensions(), "SELECT '[1,2]'::vector <-> '[1,3]', gen_random_bytes(4)"),
        {
          PGLITE_OXIDE_CACHE_DIR: path.join(scratch, 'cold-cache-0'),
        },
      ),
  },
];

/** A root whose database has vector and pgcrypto, made once (untimed). */
function withExtensions(): string {
  const root = path.join(scratch, 'extensions');
  if (!fs.existsSync(root)) {
    inFreshProcess(firstQuery(root, 'CREATE EXTENSION vector; CREATE EXTENSION pgcrypto'), {
      PGLITE_OXIDE_CACHE_DIR: path.join(scratch, 'cold-cache-0'),
    });
  }
  return root;
}

console.log(
  `bench/startup: time from process start to the first query answered; ${machine()}; median of ${runs}`,
);
const rows: Array<Array<string | number>> = [];
for (const c of cases) {
  // The anchors run initdb or compile the engine anew (seconds each), so they run once.
  const count = c.name.startsWith('anchor') ? 1 : runs;
  const figures = Array.from({ length: count }, (_, i) => c.run(i));
  rows.push([
    c.name,
    `${(median(figures.map((f) => f.firstQueryMs)) / 1000).toFixed(2)} s`,
    `${median(figures.map((f) => f.peakRssMb)).toFixed(0)} MB`,
    c.goal,
  ]);
}
printTable(['case', 'first query', 'peak RSS', 'goal'], rows);
fs.rmSync(scratch, { recursive: true, force: true });
