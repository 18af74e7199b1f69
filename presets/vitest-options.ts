import type { TemplateOptions } from '../src/template/prepare-template.js';
import type { Isolation, KeepPolicy } from '../src/testing/isolation.js';
import type { TestFileConfig } from '../src/testing/test-file-database.js';

export type { Isolation, KeepPolicy } from '../src/testing/isolation.js';

export interface PgliteVitestOptions extends TemplateOptions {
  /**
   * `transaction` (default): each test runs in a transaction rolled back after it. `reset`: each
   * test starts from the exact template state (sequences too). `none`: the file's tests share it.
   */
  isolation?: Isolation;
  /** `on-failure` writes a failing test's database to disk (PGLITE_OXIDE_KEEP overrides). */
  keep?: KeepPolicy;
  /** Where kept databases go. Default: `<os tmp>/pglite-oxide-kept`. */
  keepDir?: string;
  /** Most test databases alive at once. Default: CPU count + 1. */
  maxDatabases?: number;
  /**
   * How long a client waits for another client's transaction before 55P03 naming it. Default 3 s,
   * under the test timeout, so a test fails saying why rather than on its own timeout.
   */
  queueTimeoutMs?: number;
}

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
