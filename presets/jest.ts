// pglite-oxide in Jest test files. It loads inside Jest's sandbox, so it imports nothing of the
// engine: the environment ('pglite-oxide/jest/environment') has already leased the database.
import { InvalidInputError } from '../src/errors.js';
import { type PgliteFixture, SANDBOX_GLOBAL } from './fixture.js';

export type { Isolation, KeepPolicy } from '../src/testing/isolation.js';
export type { PgliteFixture } from './fixture.js';
export type { PgliteJestOptions } from './jest-run.js';

/**
 * This test file's database. Each test is isolated as `testEnvironmentOptions.pgliteOxide.isolation`
 * says (default 'transaction'); DATABASE_URL and PG* point at it too.
 */
export function usePglite(): PgliteFixture {
  const fixture = (globalThis as Record<string, unknown>)[SANDBOX_GLOBAL] as PgliteFixture | undefined;
  if (!fixture) {
    throw new InvalidInputError(
      "pglite-oxide: usePglite() needs testEnvironment: 'pglite-oxide/jest/environment' in jest.config.",
    );
  }
  return fixture;
}
