import path from 'node:path';
import { defineConfig } from 'vitest/config';
import { TEST_CACHE_DIR } from './tests/helpers/test-cache-dir.js';

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
    env: { PGLITE_OXIDE_CACHE_DIR: TEST_CACHE_DIR },
  },
});
