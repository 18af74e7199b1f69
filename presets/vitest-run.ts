import type { TestRunOptions } from '../src/testing/start-test-run.js';
import type { TestFileConfig } from '../src/testing/test-file-database.js';

export type { Isolation, KeepPolicy } from '../src/testing/isolation.js';

/** The same options as the Jest preset's: see TestRunOptions. */
export type PgliteVitestOptions = TestRunOptions;

/** What the global setup provides to every test file: the run's config. */
export const PROVIDE_KEY = 'pglite-oxide';

/** Which plugin's options a project's global setup takes (see pgliteOxide()). */
export const OPTIONS_ID = 'pglite-oxide.options';

declare module 'vitest' {
  interface ProvidedContext {
    'pglite-oxide': TestFileConfig;
    'pglite-oxide.options': string;
  }
}

/** What the config's `pgliteOxide(options)` leaves for the global setup. */
export const OPTIONS_KEY = 'vitest.options';
