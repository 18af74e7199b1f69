import { defineConfig, type Options } from 'tsup';

/** Entries users load with `import` or `require` (Jest loads its environment and global setup with require). */
const BOTH = {
  index: 'src/index.ts',
  jest: 'presets/jest.ts',
  'jest-environment': 'presets/jest-environment.ts',
  'jest-global-setup': 'presets/jest-global-setup.ts',
  'jest-global-teardown': 'presets/jest-global-teardown.ts',
};

/** Entries only ever loaded as ES modules: CommonJS builds of them would be dead weight. */
const ESM_ONLY = {
  // Vitest refuses require(): its test-side module and its config helper are ESM only.
  vitest: 'presets/vitest.ts',
  'vitest-config': 'presets/vitest-config.ts',
  // Loaded by path from vitest.config (globalSetup), so it stays a file of its own.
  'vitest-global-setup': 'presets/vitest-global-setup.ts',
  // Loaded by path as a setup file of each test file (it leases the file's database).
  'vitest-file-setup': 'presets/vitest-file-setup.ts',
  // The pglite-oxide command (package bin); its shebang line is kept.
  cli: 'src/cli/main.ts',
  // Started by path (as .js) as each hosted test database's worker thread.
  'host-worker': 'src/testing/host/host-worker.ts',
  // Started by path (as .js) as the thread of an engine that serve and run keep off their main thread.
  'engine-thread': 'src/runtime/engine-thread.ts',
};

const shared: Options = {
  target: 'node20',
  external: ['vitest', 'vite', 'pg', 'jest-environment-node'],
  // Maps for debugging here; the package does not ship them (see "files").
  sourcemap: true,
  // Gives the CJS build import.meta.url, which the engine asset lookups use.
  shims: true,
};

export default defineConfig([
  {
    ...shared,
    entry: { ...BOTH, ...ESM_ONLY },
    format: ['esm'],
    // Every ES module entry shares one copy of the core, in chunks.
    splitting: true,
    clean: true,
    dts: {
      entry: {
        index: BOTH.index,
        vitest: ESM_ONLY.vitest,
        'vitest-config': ESM_ONLY['vitest-config'],
        jest: BOTH.jest,
        'jest-environment': BOTH['jest-environment'],
        'jest-global-setup': BOTH['jest-global-setup'],
        'jest-global-teardown': BOTH['jest-global-teardown'],
      },
    },
  },
  {
    ...shared,
    entry: BOTH,
    format: ['cjs'],
    // The CommonJS entries share one copy of the core too.
    splitting: true,
    // Jest loads its environment, global setup and teardown with require(): each is the module itself.
    cjsInterop: true,
    dts: { entry: BOTH },
  },
]);
