import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    vitest: 'presets/vitest.ts',
    'vitest-config': 'presets/vitest-config.ts',
    // Loaded by path from vitest.config (globalSetup), so it stays a file of its own.
    'vitest-setup': 'presets/vitest-setup.ts',
    jest: 'presets/jest.ts',
    'jest-environment': 'presets/jest-environment.ts',
    'jest-global-setup': 'presets/jest-global-setup.ts',
    'jest-global-teardown': 'presets/jest-global-teardown.ts',
    // The pglite-oxide command (package bin); its shebang line is kept.
    cli: 'src/cli/main.ts',
    // Started by path as each hosted test database's worker thread.
    'host-worker': 'src/testing/host/host-worker.ts',
    // Started by path as the thread of an engine that serve and run keep off their main thread.
    'engine-thread': 'src/runtime/engine-thread.ts',
  },
  format: ['esm', 'cjs'],
  dts: {
    entry: {
      index: 'src/index.ts',
      vitest: 'presets/vitest.ts',
      'vitest-config': 'presets/vitest-config.ts',
      jest: 'presets/jest.ts',
    },
  },
  sourcemap: true,
  clean: true,
  target: 'node20',
  external: ['vitest', 'vite', 'pg', 'jest-environment-node'],
  // Jest loads its environment, global setup and teardown with require(): each is the module itself.
  cjsInterop: true,
  // Gives the CJS build import.meta.url, which the engine asset lookups use.
  shims: true,
});
