// What a test file gets of its database, the same in both presets.
import type { TestFileDatabase } from '../src/testing/test-file-database.js';

/** A test file's own database, leased for the file. */
export interface PgliteFixture {
  connectionString: string;
  /** DATABASE_URL and PG* for this file's database (also set in process.env). */
  env: Record<string, string>;
  /** Raw wire access to this file's engine (SQL string or frontend message bytes). */
  execInteractive(input: string | Uint8Array): Promise<Uint8Array>;
  /** Puts the database back to the template state now, whatever the isolation. */
  reset(): Promise<void>;
}

/** The fixture of a leased database. */
export function fixtureOf(database: TestFileDatabase): PgliteFixture {
  return {
    connectionString: database.connectionString,
    env: database.env,
    execInteractive: (input) => database.execInteractive(input),
    reset: () => database.reset(),
  };
}

/** The Jest sandbox global the environment puts this file's fixture on. */
export const SANDBOX_GLOBAL = '__pgliteOxide__';
