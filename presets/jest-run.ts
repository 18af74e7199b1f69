import { createHash } from 'node:crypto';
import path from 'node:path';
import { InvalidInputError } from '../src/errors.js';
import { closestName } from '../src/option-names.js';
import type { TestRunOptions } from '../src/testing/start-test-run.js';
import type { FileOptions, TestFileConfig } from '../src/testing/test-file-database.js';

/** pglite-oxide's options under `testEnvironmentOptions.pgliteOxide` in jest.config. */
export type PgliteJestOptions = TestRunOptions;

// Jest starts its workers after the global setup, with its environment: the run's config
// reaches every test file's environment through a variable, one per project (each project of a
// Jest config runs its own global setup, with its own options).
function runVariable(projectId: string): string {
  return `PGLITE_OXIDE_JEST_RUN_${createHash('sha256').update(projectId).digest('hex').slice(0, 16)}`;
}

export function publishRun(config: TestFileConfig, projectId: string): void {
  process.env[runVariable(projectId)] = JSON.stringify(config);
}

export function publishedRun(projectId: string): TestFileConfig {
  const value = process.env[runVariable(projectId)];
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
  checkOptionsKey(testEnvironmentOptions, 'testEnvironmentOptions in jest.config');
  const options = { ...((testEnvironmentOptions.pgliteOxide ?? {}) as PgliteJestOptions) };
  const resolve = (value: string) => path.resolve(rootDir, value);
  const resolveAll = (value: string | readonly string[] | undefined) =>
    value === undefined ? undefined : typeof value === 'string' ? resolve(value) : value.map(resolve);
  options.migrations = resolveAll(options.migrations);
  options.seed = resolveAll(options.seed);
  if (options.keepDir) options.keepDir = resolve(options.keepDir);
  return options;
}

/**
 * What a test file chose for itself in its docblock: `@jest-environment-options
 * {"pgliteOxide": {"isolation": "reset"}}`. Jest puts those over the project's own
 * testEnvironmentOptions, so the file's part is read from the docblock itself.
 */
export function fileOptionsFromDocblock(pragmas: Record<string, string | string[]>): FileOptions {
  const pragma = pragmas['jest-environment-options'];
  const text = Array.isArray(pragma) ? pragma.at(-1) : pragma;
  if (!text) return {};
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return {}; // Jest itself reports a docblock it cannot read.
  }
  checkOptionsKey(parsed, 'the @jest-environment-options of a test file');
  return (parsed.pgliteOxide ?? {}) as FileOptions;
}

/** A key that is almost `pgliteOxide` is a slip: said, rather than giving an empty database. */
function checkOptionsKey(options: Record<string, unknown>, where: string): void {
  if ('pgliteOxide' in options) return;
  const slip = Object.keys(options).find((key) => closestName(key, ['pgliteOxide']) !== null);
  if (slip) {
    throw new InvalidInputError(
      `pglite-oxide: unknown key "${slip}" in ${where}; did you mean "pgliteOxide"?`,
    );
  }
}

/** What the global setup leaves for the global teardown: the started run. */
export const RUN_KEY = 'jest.run';
