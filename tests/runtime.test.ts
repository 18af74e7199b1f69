import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { serialize } from 'pg-protocol';
import {
  EngineCrashedError,
  hexc,
  InteractiveRuntime,
  InvalidInputError,
  installAndInitIn,
  type PglitePaths,
  standardEnv,
} from 'pglite-oxide';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempRoot } from './helpers/temp-root.js';
import { dataRows, decodeBackend } from './helpers/wire.js';

let paths: PglitePaths;
let runtime: InteractiveRuntime;

beforeAll(async () => {
  paths = await installAndInitIn(await tempRoot());
  runtime = await InteractiveRuntime.start(paths);
});
afterAll(() => runtime.close());

describe('execInteractive', () => {
  it('returns the raw wire response: SELECT 42 gives a DataRow with 42', async () => {
    const bytes = await runtime.execInteractive('SELECT 42 AS answer');
    const names = decodeBackend(bytes).map((m) => m.name);
    expect(names).toEqual(['rowDescription', 'dataRow', 'commandComplete', 'readyForQuery']);
    expect(dataRows(bytes)).toEqual([['42']]);
  });

  it('returns an ErrorResponse for bad SQL, and the next call works', async () => {
    const bad = decodeBackend(await runtime.execInteractive('SELECT * FROM no_such_table'));
    expect(bad[0]).toMatchObject({ name: 'error', code: '42P01' });
    expect(bad.at(-1)).toMatchObject({ name: 'readyForQuery', status: 'I' });
    expect(dataRows(await runtime.execInteractive('SELECT 7'))).toEqual([['7']]);
  });

  it('takes raw frontend messages: an extended-protocol batch through Sync', async () => {
    const batch = Buffer.concat([
      serialize.parse({ text: 'SELECT $1::int + 1', types: [] }),
      serialize.bind({ values: ['41'] }),
      serialize.execute(),
      serialize.sync(),
    ]);
    expect(dataRows(await runtime.execInteractive(batch))).toEqual([['42']]);
  });

  it('refuses malformed bytes with a clear error and keeps the engine usable', async () => {
    const query = serialize.query('SELECT 1');
    await expect(runtime.execInteractive(query.subarray(0, query.length - 3))).rejects.toThrow(/cut off/);
    await expect(runtime.execInteractive(new Uint8Array([0, 0, 0, 8, 0, 3, 0, 0]))).rejects.toBeInstanceOf(
      InvalidInputError,
    );
    await expect(runtime.execInteractive('SELECT 1\0; DROP TABLE x')).rejects.toThrow(/NUL/);
    expect(dataRows(await runtime.execInteractive('SELECT 1'))).toEqual([['1']]);
  });
});

describe('poke and interactiveOne', () => {
  it('runs what was poked as one unit, and nothing when nothing was poked', async () => {
    runtime.poke('CREATE TABLE poked (id int)');
    runtime.poke('INSERT INTO poked VALUES (1), (2)');
    const out = decodeBackend(await runtime.interactiveOne());
    expect(out.filter((m) => m.name === 'commandComplete').map((m) => (m as { text?: string }).text)).toEqual(
      ['CREATE TABLE', 'INSERT 0 2'],
    );
    expect((await runtime.interactiveOne()).length).toBe(0);
    expect(dataRows(await runtime.execInteractive('SELECT count(*) FROM poked'))).toEqual([['2']]);
  });
});

describe('runPgDump', () => {
  it('dumps the schema with a table we created, and restores the session after', async () => {
    await runtime.execInteractive('CREATE TABLE dumped_things (id serial PRIMARY KEY, label text NOT NULL)');
    await runtime.execInteractive("SET search_path = public, pg_catalog; SET application_name = 'mine'");
    const dump = await runtime.runPgDump(['pg_dump', '--schema-only']);
    expect(dump).toContain('CREATE TABLE public.dumped_things');
    expect(dump).toContain('label text NOT NULL');
    const [row] = dataRows(
      await runtime.execInteractive(
        "SELECT current_setting('search_path'), current_setting('application_name')",
      ),
    );
    expect(row).toEqual(['public, pg_catalog', 'mine']);
    // pg_dump's snapshot transaction does not stay open in the shared session.
    expect(decodeBackend(await runtime.execInteractive('SELECT 1')).at(-1)).toMatchObject({ status: 'I' });
  });

  it('prints pg_dump --version', async () => {
    expect(await runtime.runPgDump(['pg_dump', '--version'])).toBe('pg_dump (PostgreSQL) 17.5\n');
  });

  it('returns null when the install has no pg_dump', async () => {
    const other = await installAndInitIn(await tempRoot());
    await fs.rm(path.join(other.binDir, 'pg_dump.wasm'));
    const bare = await InteractiveRuntime.start(other);
    try {
      expect(await bare.runPgDump(['pg_dump', '--version'])).toBeNull();
    } finally {
      await bare.close();
    }
  });
});

describe('engine lifecycle', () => {
  it('keeps committed data across a close and a reopen', async () => {
    const own = await installAndInitIn(await tempRoot());
    const first = await InteractiveRuntime.start(own);
    await first.execInteractive("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')");
    await first.close();
    await expect(first.execInteractive('SELECT 1')).rejects.toMatchObject({ code: 'RUNTIME_CLOSED' });
    const second = await InteractiveRuntime.start(own);
    try {
      expect(dataRows(await second.execInteractive('SELECT v FROM kept'))).toEqual([['still here']]);
    } finally {
      await second.close();
    }
  });

  it('restarts a dead engine on the next call without losing committed data', async () => {
    const own = await installAndInitIn(await tempRoot());
    const crashing = await InteractiveRuntime.start(own);
    try {
      await crashing.execInteractive(
        'CREATE TABLE survivors (id int); INSERT INTO survivors VALUES (1), (2), (3)',
      );
      // Raw COPY FROM STDIN makes the engine exit: the runtime must report it and recover.
      const exitCodeBefore = process.exitCode;
      await expect(crashing.execInteractive('COPY survivors FROM STDIN')).rejects.toBeInstanceOf(
        EngineCrashedError,
      );
      expect(process.exitCode).toBe(exitCodeBefore);
      expect(dataRows(await crashing.execInteractive('SELECT count(*) FROM survivors'))).toEqual([['3']]);
    } finally {
      await crashing.close();
    }
  });
});

describe('engine control', () => {
  it('restartEngine starts a fresh session on the same data; withEngine holds the engine', async () => {
    await runtime.execInteractive(
      "CREATE TABLE IF NOT EXISTS restarted (v int); SET application_name = 'before'",
    );
    const order: string[] = [];
    const held = runtime.withEngine(async (engine) => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      order.push('held');
      return (await engine.query<{ n: number }>('SELECT 1 AS n')).rows[0]?.n;
    });
    const queued = runtime.execInteractive('SELECT 2').then(() => order.push('queued'));
    expect(await held).toBe(1);
    await queued;
    expect(order).toEqual(['held', 'queued']);

    await runtime.restartEngine();
    const [row] = dataRows(
      await runtime.execInteractive(
        "SELECT current_setting('application_name'), to_regclass('restarted')::text",
      ),
    );
    expect(row).toEqual(['', 'restarted']);
  });

  it('execWireNow answers at once when the engine is free, and not while a call holds it', async () => {
    const select = serialize.query('SELECT 5');
    expect(dataRows(runtime.execWireNow(select)!)).toEqual([['5']]);
    let release = () => {};
    const held = runtime.withEngine(() => new Promise<void>((resolve) => (release = resolve)));
    expect(runtime.execWireNow(select)).toBeUndefined();
    const queued = runtime.execInteractive('SELECT 6');
    await new Promise((resolve) => setTimeout(resolve, 10));
    release();
    await held;
    expect(runtime.execWireNow(select)).toBeUndefined();
    expect(dataRows(await queued)).toEqual([['6']]);
    expect(dataRows(runtime.execWireNow(select)!)).toEqual([['5']]);
  });

  it('execWireNow reports a dead engine as EngineCrashedError and the next call restarts it', async () => {
    const own = await InteractiveRuntime.start(await installAndInitIn(await tempRoot()));
    try {
      const exitCodeBefore = process.exitCode;
      expect(() => own.execWireNow(serialize.query('COPY pg_class FROM STDIN'))).toThrow(EngineCrashedError);
      expect(process.exitCode).toBe(exitCodeBefore);
      expect(own.execWireNow(serialize.query('SELECT 1'))).toBeUndefined();
      expect(dataRows(await own.execInteractive('SELECT 8'))).toEqual([['8']]);
    } finally {
      await own.close();
    }
  });

  it('starts engines through an engineFactory when given one', async () => {
    const own = await installAndInitIn(await tempRoot());
    const opened: string[] = [];
    const custom = await InteractiveRuntime.start(own, {
      engineFactory: async (spec) => {
        opened.push(spec.paths.pgdata);
        const { PGlite } = await import('@electric-sql/pglite');
        return PGlite.create({ dataDir: spec.paths.pgdata });
      },
    });
    try {
      expect(dataRows(await custom.execInteractive('SELECT current_database()'))).toEqual([['postgres']]);
      expect(opened).toEqual([own.pgdata]);
    } finally {
      await custom.close();
    }
  });
});

describe('standardEnv', () => {
  it('has the defaults: postgres, postgres, UTF8, UTC, and the engine runs with them', async () => {
    expect(standardEnv()).toMatchObject({
      PGUSER: 'postgres',
      PGDATABASE: 'postgres',
      PGCLIENTENCODING: 'UTF8',
      TZ: 'UTC',
      PGTZ: 'UTC',
    });
    const bytes = await runtime.execInteractive(
      "SELECT current_database(), current_user, current_setting('TimeZone'), current_setting('client_encoding')",
    );
    expect(dataRows(bytes)).toEqual([['postgres', 'postgres', 'UTC', 'UTF8']]);
  });

  it('applies overrides made before the runtime starts: database and time zone', async () => {
    const own = await installAndInitIn(await tempRoot());
    const env = {
      ...standardEnv(),
      PGDATABASE: 'app_db',
      TZ: 'America/New_York',
      PGTZ: 'America/New_York',
    };
    const custom = await InteractiveRuntime.start(own, { env });
    try {
      const bytes = await custom.execInteractive(
        "SELECT current_database(), current_setting('TimeZone'), '2024-01-01 12:00:00+00'::timestamptz::text",
      );
      expect(dataRows(bytes)).toEqual([['app_db', 'America/New_York', '2024-01-01 07:00:00-05']]);
    } finally {
      await custom.close();
    }
    // The database now exists in the cluster and opens directly.
    const again = await InteractiveRuntime.start(own, { env: { PGDATABASE: 'app_db' } });
    try {
      expect(dataRows(await again.execInteractive('SELECT current_database()'))).toEqual([['app_db']]);
    } finally {
      await again.close();
    }
  });

  it('starts with a small shared_buffers by default, and takes settings', async () => {
    expect(dataRows(await runtime.execInteractive('SHOW shared_buffers'))).toEqual([['16MB']]);
    const own = await installAndInitIn(await tempRoot());
    const tuned = await InteractiveRuntime.start(own, {
      settings: { shared_buffers: '8MB', work_mem: '2MB' },
    });
    try {
      expect(
        dataRows(
          await tuned.execInteractive(
            "SELECT current_setting('shared_buffers'), current_setting('work_mem')",
          ),
        ),
      ).toEqual([['8MB', '2MB']]);
    } finally {
      await tuned.close();
    }
  });
});

describe('hexc', () => {
  it('prints offset, hex and ASCII per row with the prefix', () => {
    const text = hexc(new TextEncoder().encode('Z\0\0\0\x05IABCDEFGHIJKLMNOP'), '<-', 8);
    expect(text.split('\n')).toEqual([
      '<- 00000000  5a 00 00 00 05 49 41 42  |Z....IAB|',
      '<- 00000008  43 44 45 46 47 48 49 4a  |CDEFGHIJ|',
      '<- 00000010  4b 4c 4d 4e 4f 50        |KLMNOP|',
    ]);
    expect(() => hexc(new Uint8Array(1), '', 0)).toThrow(RangeError);
    expect(existsSync(paths.pgdata)).toBe(true);
  });
});
