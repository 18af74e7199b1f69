// pglite-oxide in vitest.config.ts. Kept apart from the test-side module: that one extends
// Vitest's `test`, which can only happen inside a running test file, not while loading a config.
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'vite';
import type { ViteUserConfig } from 'vitest/config';
import { handOver } from './handoff.js';
import { OPTIONS_ID, OPTIONS_KEY, type PgliteVitestOptions } from './vitest-run.js';

export type { Isolation, PgliteVitestOptions } from './vitest-run.js';

/**
 * The Vitest plugin: builds the migrated template once per run and gives every test file its own
 * database. With Vitest `projects`, each project's plugin brings its own options.
 */
export function pgliteOxide(options: PgliteVitestOptions = {}): Plugin {
  // Options may hold functions (setup, onProgress), which a project's provided values cannot:
  // they wait in this process under a key of this plugin's own, which its project is given.
  const key = `${OPTIONS_KEY}.${randomUUID()}`;
  handOver(key, options);
  const globalSetup = fileURLToPath(new URL('./vitest-global-setup.js', import.meta.url));
  const fileSetup = fileURLToPath(new URL('./vitest-file-setup.js', import.meta.url));
  return {
    name: 'pglite-oxide',
    config: (config: ViteUserConfig): ViteUserConfig => {
      // First of the setup files: the project's own may read DATABASE_URL too.
      const own = config.test?.setupFiles ?? [];
      config.test = { ...config.test, setupFiles: [fileSetup, ...(typeof own === 'string' ? [own] : own)] };
      return { test: { globalSetup: [globalSetup], provide: { [OPTIONS_ID]: key } } };
    },
  };
}
