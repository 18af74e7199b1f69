import type { TestRunOptions } from '../src/testing/start-test-run.js';
import type { TestFileConfig } from '../src/testing/test-file-database.js';

export type { Isolation, KeepPolicy } from '../src/testing/isolation.js';

/** The same options as the Jest preset's: see TestRunOptions. */
export type PgliteVitestOptions = TestRunOptions;

export const PROVIDE_KEY = 'pglite-oxide';

declare module 'vitest' {
  interface ProvidedContext {
    'pglite-oxide': TestFileConfig;
  }
}

// The config and the global setup run in the same process but may load this package twice (the
// config bundler and the setup loader resolve it apart), so the options travel on globalThis.
const REGISTRY = Symbol.for('pglite-oxide.vitest.options');

export function registerOptions(options: PgliteVitestOptions): void {
  (globalThis as Record<symbol, unknown>)[REGISTRY] = options;
}

export function takeRegisteredOptions(): PgliteVitestOptions {
  return ((globalThis as Record<symbol, unknown>)[REGISTRY] as PgliteVitestOptions | undefined) ?? {};
}
