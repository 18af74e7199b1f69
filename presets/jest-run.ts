import path from 'node:path';
import { InvalidInputError } from '../src/errors.js';
import type { TestRunOptions } from '../src/testing/start-test-run.js';
import type { TestFileConfig } from '../src/testing/test-file-database.js';

/** pglite-oxide's options under `testEnvironmentOptions.pgliteOxide` in jest.config. */
export type PgliteJestOptions = TestRunOptions;

// Jest starts its workers after the global setup, with its environment: the run's config
// reaches every test file's environment through this variable.
const RUN_ENV = 'PGLITE_OXIDE_JEST_RUN';

export function publishRun(config: TestFileConfig): void {
  process.env[RUN_ENV] = JSON.stringify(config);
}

export function publishedRun(): TestFileConfig {
  const value = process.env[RUN_ENV];
  if (!value) {
    throw new InvalidInputError(
      "pglite-oxide: the Jest global setup did not run. Add globalSetup: 'pglite-oxide/jest/global-setup' " +
        "and globalTeardown: 'pglite-oxide/jest/global-teardown' to jest.config.",
    );
  }
  return JSON.parse(value) as TestFileConfig;
}

/** The options from jest.config, with relative paths taken from the project's rootDir. */
export function optionsFromConfig(
  testEnvironmentOptions: Record<string, unknown>,
  rootDir: string,
): PgliteJestOptions {
  const options = { ...((testEnvironmentOptions.pgliteOxide ?? {}) as PgliteJestOptions) };
  const resolve = (value: string) => path.resolve(rootDir, value);
  const resolveAll = (value: string | readonly string[] | undefined) =>
    value === undefined ? undefined : typeof value === 'string' ? resolve(value) : value.map(resolve);
  options.migrations = resolveAll(options.migrations);
  options.seed = resolveAll(options.seed);
  if (options.keepDir) options.keepDir = resolve(options.keepDir);
  return options;
}

/** What the global setup leaves for the global teardown: the started run. */
export const RUN_KEY = 'jest.run';
