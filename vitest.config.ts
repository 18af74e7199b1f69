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
    // Two files at once, also on a 2-core CI machine (Vitest's default there is one): the suite
    // spends much of its time waiting on child processes, sockets and timers.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['tests/global-setup.ts'],
    env: { PGLITE_OXIDE_CACHE_DIR: TEST_CACHE_DIR },
  },
});
