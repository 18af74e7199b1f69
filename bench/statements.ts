/**
 * Statements inside tests, in one process: the same test bodies (insert an account, insert an
 * order, a join with GROUP BY) with per-test isolation, through a pg.Pool, on
 *   - pglite-oxide under each isolation (startTestRun + TestFileDatabase, what the presets do),
 *   - the same engine and proxy in the bench's own thread (startSuiteDatabase, the proxy's
 *     beginTest/endTest): what isolation 'transaction' costs without the engine host's thread hop
 *     and control round trip, the floor of the hosted design,
 *   - pg-mem (an in-memory emulator, not PostgreSQL) through its pg adapter, restoring a backup
 *     after each test: what people pick when they want speed.
 * The anchor is pg-mem in the same run; `transaction` is also set against `none` (the isolation
 * that does no bookkeeping at all).
 *
 *   npm run build && npm run bench:statements
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { newDb } from 'pg-mem';
import { machine, printTable, requireBuild } from './support.js';

requireBuild();
const { prepareTemplate, startSuiteDatabase, startTestRun, TestFileDatabase } = (await import(
  path.resolve('dist/index.js')
)) as typeof import('../src/index.js');

const TESTS = Number(process.env.STATEMENTS_TESTS ?? 200);
const ROUNDS = Number(process.env.STATEMENTS_ROUNDS ?? 5);
const STATEMENTS_PER_TEST = 3;

const SCHEMA = `
  CREATE TABLE accounts (id serial PRIMARY KEY, email text UNIQUE NOT NULL, balance int NOT NULL DEFAULT 0);
  CREATE TABLE orders (id serial PRIMARY KEY, account_id int NOT NULL REFERENCES accounts (id), total int NOT NULL);
  INSERT INTO accounts (email, balance) VALUES ('ada@example.com', 10), ('bob@example.com', 20);
`;

/** One test's body: what an ordinary repository test does. */
async function testBody(pool: pg.Pool, test: number, isolated = true): Promise<void> {
  const account = await pool.query('INSERT INTO accounts (email) VALUES ($1) RETURNING id', [
    `user${test}@example.com`,
  ]);
  await pool.query('INSERT INTO orders (account_id, total) VALUES ($1, $2)', [account.rows[0].id, test]);
  const { rows } = await pool.query(
    'SELECT a.email, count(o.id)::int AS orders FROM accounts a LEFT JOIN orders o ON o.account_id = a.id GROUP BY a.email ORDER BY a.email',
  );
  if (isolated && rows.length !== 3)
    throw new Error(`expected 3 accounts, got ${rows.length}: isolation failed`);
}

interface Subject {
  name: string;
  /** Runs TESTS test bodies with the subject's isolation around each; returns ms. */
  run(): Promise<number>;
  close(): Promise<void>;
}

async function pgliteOxide(isolation: 'transaction' | 'none' | 'reset'): Promise<Subject> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pglite-oxide-bench-statements-'));
  await fs.writeFile(path.join(dir, '1_schema.sql'), SCHEMA);
  const run = await startTestRun({ migrations: dir, isolation }, { parallelFiles: 1 });
  const database = await TestFileDatabase.open(run.config);
  const pool = new pg.Pool({ connectionString: database.connectionString, max: 1 });
  let runs = 0;
  return {
    name: `pglite-oxide, isolation ${isolation}`,
    async run() {
      const started = performance.now();
      for (let test = 0; test < TESTS; test++) {
        await database.beforeTest();
        // Under 'none' nothing is undone: each run's accounts are new ones.
        await testBody(pool, isolation === 'none' ? test + TESTS * runs : test, isolation !== 'none');
        await database.afterTest({ failed: false, label: `test ${test}` });
      }
      runs++;
      return performance.now() - started;
    },
    async close() {
      await pool.end();
      await database.close();
      await run.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
/** Isolation 'transaction' with the engine and its proxy in this thread: no host, no control socket. */
async function sameThread(): Promise<Subject> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pglite-oxide-bench-statements-'));
  await fs.writeFile(path.join(dir, '1_schema.sql'), SCHEMA);
  const suite = await startSuiteDatabase(await prepareTemplate({ migrations: dir }), {
    testTransactions: true,
  });
  const pool = new pg.Pool({ connectionString: suite.connectionString, max: 1 });
  return {
    name: 'floor: transaction, engine in this thread',
    async run() {
      const started = performance.now();
      for (let test = 0; test < TESTS; test++) {
        await suite.proxy.beginTest();
        await testBody(pool, test);
        await suite.proxy.endTest('rollback');
      }
      return performance.now() - started;
    },
    async close() {
      await pool.end();
      await suite.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

function pgMem(): Subject {
  const db = newDb();
  db.public.none(SCHEMA);
  const backup = db.backup();
  const { Pool } = db.adapters.createPg() as { Pool: typeof pg.Pool };
  const pool = new Pool();
  return {
    name: 'pg-mem (emulator), backup.restore() per test',
    async run() {
      const started = performance.now();
      for (let test = 0; test < TESTS; test++) {
        await testBody(pool, test);
        backup.restore();
      }
      return performance.now() - started;
    },
    close: () => pool.end(),
  };
}

console.log(
  `Statements inside tests: ${TESTS} tests x ${STATEMENTS_PER_TEST} statements, one process, best of ${ROUNDS}`,
);
console.log(machine());
const subjects = [
  pgMem(),
  await pgliteOxide('none'),
  await pgliteOxide('transaction'),
  await pgliteOxide('reset'),
  await sameThread(),
];
const best = new Map<string, number>();
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const subject of subjects) {
      const ms = await subject.run();
      best.set(subject.name, Math.min(best.get(subject.name) ?? Number.POSITIVE_INFINITY, ms));
    }
  }
} finally {
  for (const subject of subjects) await subject.close();
}
const anchor = best.get(subjects[0]!.name)!;
const none = best.get(subjects[1]!.name)!;
printTable(
  ['subject', 'ms', 'statements/s', 'x pg-mem time', 'statements/s vs none'],
  subjects.map((subject) => {
    const ms = best.get(subject.name)!;
    return [
      subject.name,
      ms.toFixed(0),
      Math.round((TESTS * STATEMENTS_PER_TEST * 1000) / ms),
      (ms / anchor).toFixed(2),
      subject.name.startsWith('pg-mem') ? '' : (none / ms).toFixed(2),
    ];
  }),
);
