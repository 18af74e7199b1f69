import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    // Loaded by path at run time (new URL('./initdb-worker.js', import.meta.url)), so it stays a file of its own.
    'initdb-worker': 'src/install/initdb-worker.ts',
  },
  format: ['esm', 'cjs'],
  dts: { entry: { index: 'src/index.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node20',
  // Gives the CJS build import.meta.url, which locates the worker and the engine assets.
  shims: true,
});
