// pglite-oxide in Vitest test files: the extended `test` with fixtures, or `usePglite()` for
// describe-style suites. The config side is `pgliteOxide()` from 'pglite-oxide/vitest/config'.
import type { Pool, PoolClient } from 'pg';
import {
  afterAll,
  afterEach,
  test as baseTest,
  beforeAll,
  beforeEach,
  inject,
  type TestContext,
} from 'vitest';
import { InvalidInputError } from '../src/errors.js';
import { TestFileDatabase } from '../src/testing/test-file-database.js';
import { PROVIDE_KEY } from './vitest-options.js';

export type { Isolation, KeepPolicy, PgliteVitestOptions } from './vitest-options.js';

/** What a test file gets: its own database, leased once for the file. */
export interface PgliteFixture {
  connectionString: string;
  /** DATABASE_URL and PG* for this file's database (also set in process.env). */
  env: Record<string, string>;
  /** Raw wire access to this file's engine (SQL string or frontend message bytes). */
  execInteractive(input: string | Uint8Array): Promise<Uint8Array>;
  /** Puts the database back to the template state now, whatever the isolation. */
  reset(): Promise<void>;
}

async function openFileDatabase(): Promise<TestFileDatabase> {
  const config = inject(PROVIDE_KEY);
  if (!config) {
    throw new InvalidInputError(
      'pglite-oxide: no engine host was provided. Add pgliteOxide() to the plugins of vitest.config.ts.',
    );
  }
  const database = await TestFileDatabase.open(config);
  Object.assign(process.env, database.env);
  return database;
}

function fixtureOf(database: TestFileDatabase): PgliteFixture {
  return {
    connectionString: database.connectionString,
    env: database.env,
    execInteractive: (input) => database.execInteractive(input),
    reset: () => database.reset(),
  };
}

async function afterTest(database: TestFileDatabase, context: Pick<TestContext, 'task'>): Promise<void> {
  const task = context.task;
  const message = await database.afterTest({
    failed: task.result?.state === 'fail',
    label: `${task.file?.name ?? ''} ${task.fullName ?? task.name}`,
  });
  if (message) console.warn(message);
}

async function loadPg(): Promise<typeof import('pg')> {
  const module = (await import('pg')) as typeof import('pg') & { default?: typeof import('pg') };
  return module.default ?? module;
}

const databases = new WeakMap<PgliteFixture, TestFileDatabase>();

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
      databases.set(fixture, database);
      try {
        await use(fixture);
      } finally {
        await database.close();
      }
    },
    { scope: 'file' },
  ],
  isolated: [
    async ({ pglite, task }, use) => {
      const database = databases.get(pglite)!;
      await database.beforeTest();
      await use(undefined);
      await afterTest(database, { task });
    },
    { auto: true },
  ],
  pool: async ({ pglite }, use) => {
    const { Pool } = await loadPg();
    const pool = new Pool({ connectionString: pglite.connectionString, max: 10 });
    try {
      await use(pool);
    } finally {
      await pool.end();
    }
  },
  db: async ({ pool }, use) => {
    const client = await pool.connect();
    try {
      await use(client);
    } finally {
      client.release();
    }
  },
});

/**
 * For describe-style suites: leases this file's database before its tests and gives it back
 * after; each test is isolated as the config says. Read the returned object's properties inside
 * tests and hooks, not at import time.
 */
export function usePglite(): PgliteFixture {
  let database: TestFileDatabase | undefined;
  const current = (): TestFileDatabase => {
    if (!database)
      throw new InvalidInputError('usePglite(): the database is available inside tests and hooks only.');
    return database;
  };
  beforeAll(async () => {
    database = await openFileDatabase();
  });
  beforeEach(() => current().beforeTest());
  afterEach((context) => afterTest(current(), context));
  afterAll(async () => {
    await database?.close();
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
