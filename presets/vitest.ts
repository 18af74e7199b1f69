// pglite-oxide in Vitest test files: the extended `test` with fixtures, or `usePglite()` for
// describe-style suites. The config side is `pgliteOxide()` from 'pglite-oxide/vitest/config'.
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Pool, PoolClient } from 'pg';
import {
  afterAll,
  afterEach,
  test as baseTest,
  beforeAll,
  beforeEach,
  describe,
  expect,
  inject,
  type TestContext,
} from 'vitest';
import { InvalidInputError } from '../src/errors.js';
import { pgtapFiles, runTapFiles, type TapFileResult, tapChecks } from '../src/testing/pgtap-files.js';
import { type FileOptions, TestFileDatabase } from '../src/testing/test-file-database.js';
import { fixtureOf, type PgliteFixture } from './fixture.js';
import { PROVIDE_KEY } from './vitest-run.js';

export type { FileOptions } from '../src/testing/test-file-database.js';
export type { PgliteFixture } from './fixture.js';
export type { Isolation, KeepPolicy, PgliteVitestOptions } from './vitest-run.js';

/** What this test file chose for itself (pgliteFileOptions), until its database is given back. */
let fileOptions: FileOptions = {};
let fileDatabaseOpen = false;

/**
 * This test file's own options, over the config's: call it at the top of the file, before any
 * test. E.g. `pgliteFileOptions({ isolation: 'reset' })` for a file of LISTEN/NOTIFY tests (which
 * need commits) in a project that isolates the rest by transaction.
 */
export function pgliteFileOptions(options: FileOptions): void {
  if (fileDatabaseOpen) {
    throw new InvalidInputError(
      "pglite-oxide: pgliteFileOptions() must run before this file's database is opened: call it at the top of the file.",
    );
  }
  fileOptions = options;
}

/** This file's database, leased by the plugin's setup file before the file's modules were imported. */
let leasedEarly: TestFileDatabase | null = null;

function runConfig() {
  const config = inject(PROVIDE_KEY);
  if (!config) {
    throw new InvalidInputError(
      'pglite-oxide: no engine host was provided. Add pgliteOxide() to the plugins of vitest.config.ts.',
    );
  }
  return config;
}

/**
 * Leases this test file's database before the file's modules are imported, so that DATABASE_URL
 * and PG* are set when they are read at import (a module-level `process.env.DATABASE_URL`, an env
 * validator), as in Jest. The plugin's setup file calls it; a file that never uses the fixtures
 * gives the database back at its end.
 */
export async function leaseBeforeImports(): Promise<void> {
  const database = await TestFileDatabase.open(runConfig());
  Object.assign(process.env, database.env);
  leasedEarly = database;
  afterAll(async () => {
    if (leasedEarly === database) {
      leasedEarly = null;
      await database.close(testFileLabel());
    }
  });
}

async function openFileDatabase(options: FileOptions = fileOptions): Promise<TestFileDatabase> {
  let database = leasedEarly;
  leasedEarly = null;
  if (database) database.choose(options);
  else database = await TestFileDatabase.open(runConfig(), options);
  fileDatabaseOpen = true;
  Object.assign(process.env, database.env);
  return database;
}

/** Gives this file's database back; the next file (in the same module context) starts afresh. */
async function closeFileDatabase(database: TestFileDatabase): Promise<void> {
  fileDatabaseOpen = false;
  fileOptions = {};
  await database.close(testFileLabel());
}

/** The running test file, as the output names it. */
function testFileLabel(): string {
  const file = expect.getState().testPath;
  return file ? path.relative(process.cwd(), file) : 'the test file';
}

async function afterTest(database: TestFileDatabase, context: Pick<TestContext, 'task'>): Promise<void> {
  const task = context.task;
  const message = await database.afterTest({
    failed: task.result?.state === 'fail',
    // Vitest 4's fullName starts with the file: "tests/a.test.ts > suite > test".
    label: task.fullName ?? `${task.file?.name ?? ''} ${task.name}`,
  });
  if (message) console.warn(message);
}

// require, not import(): pg is CommonJS, and import() of it first scans its sources for named
// exports, ~10 ms more of every test file's start (Vitest starts each file in a fresh process).
const requireHere = createRequire(import.meta.url);

function loadPg(): typeof import('pg') {
  return requireHere('pg') as typeof import('pg');
}

/**
 * What the fixtures of one file share behind its `pglite` fixture: the leased database, and what
 * the test's pool fixture found left checked out, for the isolation fixture to report.
 */
interface FileState {
  database: TestFileDatabase;
  leak?: string;
}
const files = new WeakMap<PgliteFixture, FileState>();

function fileOf(fixture: PgliteFixture): FileState {
  const state = files.get(fixture);
  if (!state)
    throw new InvalidInputError('pglite-oxide: this pglite fixture was not made by pglite-oxide/vitest.');
  return state;
}

/**
 * `test` with fixtures: `pglite` (the file's database), `db` (a connected pg client, released
 * after the test) and `pool` (a pg.Pool, ended after the test). Each test is isolated as the
 * config's `isolation` says.
 */
export const test = baseTest.extend<{
  $test: { db: PoolClient; pool: Pool; isolated: undefined };
  $file: { pglite: PgliteFixture };
}>({
  pglite: [
    // biome-ignore lint/correctness/noEmptyPattern: Vitest reads the fixture's dependencies from this pattern.
    async ({}, use) => {
      const database = await openFileDatabase();
      const fixture = fixtureOf(database);
      files.set(fixture, { database });
      try {
        await use(fixture);
      } finally {
        await closeFileDatabase(database);
      }
    },
    { scope: 'file' },
  ],
  isolated: [
    async ({ pglite, task, onTestFinished }, use) => {
      const file = fileOf(pglite);
      // What the teardowns found (the pool fixture: clients left checked out) fails the test once
      // every fixture is torn down; not thrown from a teardown, which Vitest 4 reports twice.
      let failure: unknown;
      onTestFinished(() => {
        const leak = file.leak;
        file.leak = undefined;
        if (failure) throw failure;
        if (leak) throw new InvalidInputError(leak);
      });
      await file.database.beforeTest();
      await use(undefined);
      try {
        await afterTest(file.database, { task });
      } catch (error) {
        failure = error;
      }
    },
    { auto: true },
  ],
  pool: async ({ pglite }, use) => {
    const { Pool } = loadPg();
    const pool = new Pool({ connectionString: pglite.connectionString, max: 10 });
    const checkedOut = trackCheckouts(pool);
    // Vitest runs what follows use() whatever the test's outcome.
    await use(pool);
    // pool.end() waits for every checked-out client: one the test never released would hang the
    // run. Such clients are closed (the server rolls back what they left open), and the test
    // fails saying which.
    const leaked = [...checkedOut.values()];
    if (leaked.length > 0) {
      fileOf(pglite).leak = leakMessage(leaked);
      // Ending a client fails its query in flight; pool.query then releases its own client.
      await withinMs(
        Promise.all([...checkedOut.keys()].map((client) => client.end().catch(() => {}))),
        2_000,
      );
      for (const client of checkedOut.keys()) releaseOnce(client, true);
    }
    // The test may have ended it itself.
    if (!pool.ending) await pool.end();
  },
  db: async ({ pool }, use) => {
    const client = await pool.connect();
    try {
      await use(client);
    } finally {
      // The test may have released or ended it itself.
      releaseOnce(client);
    }
  },
});

/** Gives `client` back to its pool, unless it was given back already (pg-pool throws then). */
function releaseOnce(client: PoolClient, destroy?: boolean): void {
  try {
    client.release(destroy);
  } catch (error) {
    if (!/already been released/.test((error as Error).message)) throw error;
  }
}

/** The clients checked out of `pool` now, each with the last SQL it sent. */
function trackCheckouts(pool: Pool): Map<PoolClient, string> {
  const checkedOut = new Map<PoolClient, string>();
  const watched = new WeakSet<PoolClient>();
  pool.on('acquire', (client) => {
    checkedOut.set(client, '');
    if (watched.has(client)) return;
    watched.add(client);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const [text] = args;
      const sql = typeof text === 'string' ? text : (text as { text?: string } | undefined)?.text;
      if (sql && checkedOut.has(client)) checkedOut.set(client, sql);
      return query(...args);
    };
  });
  pool.on('release', (_error, client) => checkedOut.delete(client));
  return checkedOut;
}

async function withinMs(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

function leakMessage(lastQueries: string[]): string {
  const count = lastQueries.length === 1 ? '1 client' : `${lastQueries.length} clients`;
  const last = lastQueries.map((sql) => (sql ? `"${sql.slice(0, 80)}"` : 'none')).join(', ');
  return (
    `pglite-oxide: the test left ${count} checked out of the pool (last query: ${last}); ` +
    'they were closed and what they left open rolled back. Release a client from pool.connect() ' +
    'in a finally block: `try { ... } finally { client.release(); }`.'
  );
}

/**
 * For describe-style suites: leases this file's database before its tests and gives it back
 * after; each test is isolated as the config says. Read the returned object's properties inside
 * tests and hooks, not at import time.
 */
export function usePglite(options?: FileOptions): PgliteFixture {
  let database: TestFileDatabase | undefined;
  const current = (): TestFileDatabase => {
    if (!database)
      throw new InvalidInputError('usePglite(): the database is available inside tests and hooks only.');
    return database;
  };
  beforeAll(async () => {
    database = await openFileDatabase(options);
  });
  beforeEach(() => current().beforeTest());
  afterEach((context) => afterTest(current(), context));
  afterAll(async () => {
    if (database) await closeFileDatabase(database);
    database = undefined;
  });
  return {
    get connectionString() {
      return current().connectionString;
    },
    get env() {
      return current().env;
    },
    execInteractive: (input) => current().execInteractive(input),
    reset: () => current().reset(),
  };
}

/**
 * pgTAP files as tests: `await pgtap('tests/db/*.sql')` in a test file. Each SQL file runs on this
 * file's database in the template's state (pgTAP is created for it), and each TAP assertion
 * becomes a test, failing with pgTAP's diagnostics; a plan not met, or an error that stops the
 * file, fails it too. Patterns: a file, a directory, or a `*` in the file name, relative to the
 * working directory.
 */
export async function pgtap(...patterns: string[]): Promise<void> {
  const files = pgtapFiles(patterns);
  const database = await openFileDatabase();
  let results: TapFileResult[];
  try {
    results = await runTapFiles(database, files);
  } finally {
    await closeFileDatabase(database);
  }
  for (const result of results) {
    describe(result.file, () => {
      for (const check of tapChecks(result)) {
        // Vitest's own test: these need none of the fixtures (the database is already given back).
        const declare = check.todo ? baseTest.fails : check.skip ? baseTest.skip : baseTest;
        declare(check.name, () => {
          if (check.failure) throw new Error(check.failure);
        });
      }
    });
  }
}
