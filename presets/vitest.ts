// pglite-oxide in Vitest test files: the extended `test` with fixtures, or `usePglite()` for
// describe-style suites. The config side is `pgliteOxide()` from 'pglite-oxide/vitest/config'.
import type { Pool, PoolClient } from 'pg';
import { afterAll, test as baseTest, beforeAll, beforeEach, inject } from 'vitest';
import { InvalidInputError } from '../src/errors.js';
import { type SuiteDatabase, startSuiteDatabase } from '../src/testing/suite-database.js';
import { PROVIDE_KEY } from './vitest-options.js';

export type { Isolation, PgliteVitestOptions } from './vitest-options.js';

/** What a test file gets: its own database, started once for the file. */
export interface PgliteFixture {
  connectionString: string;
  env: Record<string, string>;
  /** Raw wire access to this file's engine (SQL string or frontend message bytes). */
  execInteractive(input: string | Uint8Array): Promise<Uint8Array>;
  suite: SuiteDatabase;
}

async function openSuite(): Promise<SuiteDatabase> {
  const provided = inject(PROVIDE_KEY);
  if (!provided) {
    throw new InvalidInputError(
      'pglite-oxide: no template was provided. Add pgliteOxide() to the plugins of vitest.config.ts.',
    );
  }
  const suite = await startSuiteDatabase(provided.template);
  Object.assign(process.env, suite.env);
  return suite;
}

function fixtureOf(suite: SuiteDatabase): PgliteFixture {
  return {
    connectionString: suite.connectionString,
    env: suite.env,
    execInteractive: (input) => suite.runtime.execInteractive(input),
    suite,
  };
}

// The first test of a file gets a fresh copy of the template: nothing to reset yet.
const used = new WeakSet<SuiteDatabase>();
async function resetUnlessFresh(suite: SuiteDatabase): Promise<void> {
  if (used.has(suite)) await suite.reset();
  used.add(suite);
}

// A reset puts the whole database back, under any test still running on it: with isolation
// 'reset', the tests of a file must run one at a time.
const running = new WeakSet<SuiteDatabase>();
function enterResetTest(suite: SuiteDatabase): void {
  if (running.has(suite)) {
    throw new InvalidInputError(
      "pglite-oxide: test.concurrent cannot run with isolation 'reset': resetting the database for one " +
        "test would undo another's work mid-test. Use plain test() in this file, isolation 'none', " +
        'or put the concurrent tests in separate files (files run in parallel).',
    );
  }
  running.add(suite);
}

async function loadPg(): Promise<typeof import('pg')> {
  const module = (await import('pg')) as typeof import('pg') & { default?: typeof import('pg') };
  return module.default ?? module;
}

/**
 * `test` with fixtures: `pglite` (the file's database), `db` (a connected pg client, ended after
 * the test) and `pool` (a pg.Pool, ended after the test). With isolation `reset`, each test
 * starts from the template state.
 */
export const test = baseTest.extend<{
  $test: { db: PoolClient; pool: Pool; isolated: undefined };
  $file: { pglite: PgliteFixture };
}>({
  pglite: [
    // biome-ignore lint/correctness/noEmptyPattern: Vitest reads the fixture's dependencies from this pattern.
    async ({}, use) => {
      const suite = await openSuite();
      try {
        await use(fixtureOf(suite));
      } finally {
        await suite.close();
      }
    },
    { scope: 'file' },
  ],
  isolated: [
    async ({ pglite }, use) => {
      if (inject(PROVIDE_KEY).isolation !== 'reset') return use(undefined);
      enterResetTest(pglite.suite);
      try {
        await resetUnlessFresh(pglite.suite);
        await use(undefined);
      } finally {
        running.delete(pglite.suite);
      }
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
 * For describe-style suites: starts this file's database before its tests and closes it after.
 * With isolation `reset`, the database is reset before each test. Read the returned object's
 * properties inside tests and hooks, not at import time.
 */
export function usePglite(): PgliteFixture {
  let fixture: PgliteFixture | undefined;
  const current = (): PgliteFixture => {
    if (!fixture)
      throw new InvalidInputError('usePglite(): the database is available inside tests and hooks only.');
    return fixture;
  };
  beforeAll(async () => {
    fixture = fixtureOf(await openSuite());
  });
  beforeEach(async () => {
    if (inject(PROVIDE_KEY).isolation === 'reset') await resetUnlessFresh(current().suite);
  });
  afterAll(async () => {
    await fixture?.suite.close();
    fixture = undefined;
  });
  return {
    get connectionString() {
      return current().connectionString;
    },
    get env() {
      return current().env;
    },
    execInteractive: (input) => current().execInteractive(input),
    get suite() {
      return current().suite;
    },
  };
}
