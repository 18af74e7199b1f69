// pglite-oxide in vitest.config.ts. Kept apart from the test-side module: that one extends
// Vitest's `test`, which can only happen inside a running test file, not while loading a config.
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'vite';
import type { ViteUserConfig } from 'vitest/config';
import { handOver } from './handoff.js';
import { OPTIONS_KEY, type PgliteVitestOptions } from './vitest-run.js';

export type { Isolation, PgliteVitestOptions } from './vitest-run.js';

/** The Vitest plugin: builds the migrated template once per run and gives every test file its own database. */
export function pgliteOxide(options: PgliteVitestOptions = {}): Plugin {
  handOver(OPTIONS_KEY, options);
  const setupFile = fileURLToPath(new URL('./vitest-global-setup.js', import.meta.url));
  return {
    name: 'pglite-oxide',
    config: (): ViteUserConfig => ({ test: { globalSetup: [setupFile] } }),
  };
}
