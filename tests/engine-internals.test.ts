import { serialize } from 'pg-protocol';
import { InteractiveRuntime, installAndInitIn, openMemoryEngine, prepareTemplate } from 'pglite-oxide';
import { describe, expect, it } from 'vitest';
import { loadPgDumpFactory } from '../src/runtime/pg-dump-glue.js';
import { execWire, hasFastWire } from '../src/runtime/raw-wire.js';
import { freshCacheDir, tempRoot } from './helpers/temp-root.js';
import { dataRows, decodeBackend } from './helpers/wire.js';

// The package reaches into private parts of its pinned engine and tools: the pg_dump glue and the
// engine's wire callbacks (the proxy's fast path). If an upgrade moves them, this fails first.
describe('engine internals this package depends on', () => {
  it('finds the pg_dump Emscripten module factory in @electric-sql/pglite-tools', async () => {
    const factory = await loadPgDumpFactory();
    expect(typeof factory).toBe('function');
  });

  it('takes the fast wire path on on-disk and in-memory engines, answering as PGlite does', async () => {
    const runtime = await InteractiveRuntime.start(await installAndInitIn(await tempRoot()));
    const template = await prepareTemplate({ cacheDir: await freshCacheDir() });
    const memory = await openMemoryEngine({
      templatePgdata: template.pgdata,
      runtimeRoot: template.runtimeRoot,
    });
    try {
      for (const engine of [await runtime.pglite(), memory]) {
        expect(hasFastWire(engine)).toBe(true);
        const query = serialize.query("SELECT 1 AS one; SELECT 'x' || 1/0");
        const fast = execWire(engine, query);
        expect(Buffer.from(fast)).toEqual(Buffer.from(engine.execProtocolRawSync(query)));
        expect(decodeBackend(fast).map((message) => message.name)).toContain('error');
        // PGlite's own API still works after the fast path handed its callbacks back.
        expect((await engine.query<{ n: number }>('SELECT 2 AS n')).rows).toEqual([{ n: 2 }]);
        expect(dataRows(execWire(engine, serialize.query('SELECT 3')))).toEqual([['3']]);
      }
    } finally {
      await memory.close();
      await runtime.close();
    }
  });
});
