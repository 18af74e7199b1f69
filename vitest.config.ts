import os from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Tests import the package by its name, as users do; they run against the source.
    alias: { 'pglite-oxide': path.resolve('src/index.ts') },
  },
  test: {
    include: ['tests/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['tests/global-setup.ts'],
    // One cluster cache for the whole run, apart from the user's own cache.
    env: { PGLITE_OXIDE_CACHE_DIR: path.join(os.tmpdir(), 'pglite-oxide-test-cache') },
  },
});
