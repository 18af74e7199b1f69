import { describe, expect, it } from 'vitest';
import { loadPgDumpFactory } from '../src/runtime/pg-dump-glue.js';

// The package reaches into one private part of its pinned engine tools (the pg_dump glue).
// If an upgrade moves it, this fails first, with the name of what moved.
describe('engine internals this package depends on', () => {
  it('finds the pg_dump Emscripten module factory in @electric-sql/pglite-tools', async () => {
    const factory = await loadPgDumpFactory();
    expect(typeof factory).toBe('function');
  });
});
