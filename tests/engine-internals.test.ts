import type { PGlite } from '@electric-sql/pglite';
import { serialize } from 'pg-protocol';
import { InteractiveRuntime, installAndInitIn, openMemoryEngine, prepareTemplate } from 'pglite-oxide';
import { describe, expect, it } from 'vitest';
import { keepsClientChannels } from '../src/runtime/client-channels.js';
import { ClientObjects } from '../src/runtime/client-objects.js';
import { keepsClientSettings } from '../src/runtime/client-settings.js';
import { ClientTable } from '../src/runtime/client-table.js';
import { EngineIdentity } from '../src/runtime/engine-identity.js';
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
    await onBothEngines(async (engine) => {
      expect(hasFastWire(engine)).toBe(true);
      const query = serialize.query("SELECT 1 AS one; SELECT 'x' || 1/0");
      const fast = execWire(engine, query);
      expect(Buffer.from(fast)).toEqual(Buffer.from(engine.execProtocolRawSync(query)));
      expect(decodeBackend(fast).map((message) => message.name)).toContain('error');
      // PGlite's own API still works after the fast path handed its callbacks back.
      expect((await engine.query<{ n: number }>('SELECT 2 AS n')).rows).toEqual([{ n: 2 }]);
      expect(dataRows(execWire(engine, serialize.query('SELECT 3')))).toEqual([['3']]);
    });
  });

  it("finds the session's authenticated user on on-disk and in-memory engines, and PostgreSQL checks a login role by it", async () => {
    await onBothEngines(async (engine) => {
      const identity = EngineIdentity.of(engine);
      expect(identity?.engineOid).toBe(10);
      expect(identity?.enforcesLoginRoles).toBe(true);
      expect(identity?.answersClientPids).toBe(true);
      await engine.exec('CREATE ROLE probe_app');
      const { rows } = await engine.query<{ oid: number }>(
        "SELECT oid FROM pg_roles WHERE rolname = 'probe_app'",
      );
      const app = rows[0]!.oid;
      const codes = (sql: string, role?: number) =>
        decodeBackend(execWire(engine, serialize.query(sql), role ? { role, pid: 7 } : undefined))
          .filter((message) => message.name === 'error')
          .map((message) => (message as unknown as { code: string }).code);
      // pg_cancel_backend and pg_terminate_backend were found and replaced: with no proxy's
      // clients to reach, a pid is no backend.
      expect(codes('SELECT pg_cancel_backend(12345), pg_terminate_backend(12345)')).toEqual([]);
      expect(
        decodeBackend(execWire(engine, serialize.query('SELECT pg_terminate_backend(12345)')))
          .filter((message) => message.name === 'notice')
          .map((message) => (message as unknown as { message: string }).message),
      ).toEqual(['PID 12345 is not a PostgreSQL backend process']);
      expect(codes("SELECT set_config('session_authorization', 'probe_app', false)")).toEqual([]);
      // As the role's login, back to the superuser is refused; the engine's own login may.
      expect(codes('SET SESSION AUTHORIZATION postgres', app)).toEqual(['42501']);
      expect(codes('SET SESSION AUTHORIZATION probe_app', app)).toEqual([]);
      expect(codes('SET SESSION AUTHORIZATION postgres')).toEqual([]);
      // Each client's own backend pid, and the engine's own again after.
      const pid = (as?: { role: number; pid: number }) =>
        dataRows(execWire(engine, serialize.query('SELECT pg_backend_pid()'), as));
      expect(pid({ role: 0, pid: 7 })).toEqual([['7']]);
      expect(pid({ role: app, pid: 8 })).toEqual([['8']]);
      expect(pid()).not.toEqual([['8']]);
      expect((await engine.query('SELECT current_user AS u')).rows).toEqual([{ u: 'postgres' }]);
      await engine.exec('DROP ROLE probe_app');
    });
  });

  it("keeps each client's prepared statements and cursors its own, on on-disk and in-memory engines", async () => {
    await onBothEngines(async (engine) => {
      expect(ClientObjects.of(engine)).toBeDefined();
      const run = (sql: string, pid?: number) => {
        const output = execWire(engine, serialize.query(sql), pid ? { role: 0, pid } : undefined);
        const error = decodeBackend(output).find((reply) => reply.name === 'error') as
          | { code?: string }
          | undefined;
        return error ? `ERROR ${error.code}` : dataRows(output);
      };
      run('PREPARE mine AS SELECT 7', 7);
      run('DECLARE held CURSOR WITH HOLD FOR SELECT 70', 7);
      expect(run('EXECUTE mine', 8)).toBe('ERROR 26000');
      expect(run('FETCH held', 8)).toBe('ERROR 34000');
      expect(run('SELECT count(*) FROM pg_prepared_statements', 8)).toEqual([['0']]);
      expect(run('SELECT count(*) FROM pg_cursors')).toEqual([['0']]);
      run('DEALLOCATE ALL; CLOSE ALL', 8);
      expect(run('EXECUTE mine', 7)).toEqual([['7']]);
      expect(run('FETCH held', 7)).toEqual([['70']]);
      // A transaction keeps the cursor table it began with, to its end: its cursors are cleaned up there.
      run('BEGIN; DECLARE inside CURSOR FOR SELECT 71', 7);
      expect(run('FETCH inside', 7)).toEqual([['71']]);
      expect(run('COMMIT', 7)).toEqual([]);
      expect(run('FETCH inside', 7)).toBe('ERROR 34000');
      run('DEALLOCATE ALL; CLOSE ALL', 7);
      // Temporary schemas: each client's own, named for it; the engine's own session has none.
      run("CREATE TEMP TABLE basket (item text); INSERT INTO basket VALUES ('apple')", 7);
      run("CREATE TEMP TABLE basket (item text); INSERT INTO basket VALUES ('pear')", 8);
      expect(run('SELECT item FROM basket', 7)).toEqual([['apple']]);
      expect(run('SELECT item FROM basket', 8)).toEqual([['pear']]);
      expect(run('SELECT item FROM basket')).toBe('ERROR 42P01');
      const schema = run('SELECT pg_my_temp_schema()::regnamespace::text', 7) as string[][];
      expect(schema[0]![0]).toMatch(/^pg_temp_1\d{3}$/);
      expect(run(`SELECT item FROM ${schema[0]![0]}.basket`, 8)).toBe('ERROR 0A000');
      run('DISCARD TEMP', 8);
      expect(run('SELECT item FROM basket', 7)).toEqual([['apple']]);
      run('DISCARD TEMP', 7);
    });
  });

  it('finds SET, RESET, SHOW, LISTEN and UNLISTEN for the utility hook on on-disk and in-memory engines', async () => {
    await onBothEngines(async (engine) => {
      expect(keepsClientChannels(engine)).toBe(true);
      expect(keepsClientSettings(engine)).toBe(true);
    });
  });

  it("counts a client's setting changes by any path, and hides custom settings it never set", async () => {
    const { clients, engine } = await engineWithClientTable();
    try {
      const as = (pid?: number) => (pid ? { role: 0, pid } : undefined);
      const rows = (sql: string, pid?: number) => dataRows(execWire(engine, serialize.query(sql), as(pid)));
      const run = (sql: string, pid?: number) => {
        const messages = decodeBackend(execWire(engine, serialize.query(sql), as(pid)));
        const error = messages.find((message) => message.name === 'error') as { code?: string } | undefined;
        return error ? `ERROR ${error.code}` : 'ok';
      };
      const seven = clients.add({ pid: 7, role: 0 })!;
      clients.add({ pid: 8, role: 0 });
      run("DO $$BEGIN EXECUTE 'SET app.' || 'tenant = 7'; END$$", 7);
      expect(seven.settingsVersion()).toBe(1);
      run("SELECT set_config('app.local', 'x', true)", 7);
      run('BEGIN; SET LOCAL work_mem = 1024; SET TRANSACTION READ ONLY; COMMIT', 7);
      expect(seven.settingsVersion()).toBe(1);
      run("SELECT set_config('work_mem', '2MB', false)", 7);
      expect(seven.settingsVersion()).toBe(2);
      expect(clients.settingNames()).toEqual(['app.tenant', 'app.local']);
      expect(rows("SELECT current_setting('app.tenant', true)", 7)).toEqual([['7']]);
      expect(rows("SELECT current_setting('app.tenant', true)", 8)).toEqual([[null]]);
      expect(run('SHOW app.tenant', 8)).toBe('ERROR 42704');
      // The engine's own calls get PostgreSQL's answer.
      expect(rows("SELECT current_setting('app.tenant', true)")).toEqual([['7']]);
    } finally {
      await engine.close();
    }
  });

  it('counts changes of roles by any path as they are made, and nothing else', async () => {
    const { clients, engine } = await engineWithClientTable();
    try {
      const counted = (sql: string) => {
        const before = clients.rolesVersion();
        execWire(engine, serialize.query(sql));
        return clients.rolesVersion() !== before;
      };
      counted('SELECT 1');
      expect(counted('CREATE TABLE t (a int); INSERT INTO t VALUES (1); GRANT SELECT ON t TO public')).toBe(
        false,
      );
      expect(counted('CREATE ROLE r1')).toBe(true);
      expect(counted("DO $$BEGIN EXECUTE 'ALTER ROLE r1 ' || 'LOGIN'; END$$")).toBe(true);
      expect(counted('GRANT r1 TO postgres')).toBe(true);
      expect(counted('GRANT SET ON PARAMETER zero_damaged_pages TO r1')).toBe(true);
      // A superuser's UPDATE of the catalog, the last statement of its transaction.
      expect(counted("UPDATE pg_authid SET rolcanlogin = false WHERE rolname = 'r1'")).toBe(true);
      expect(counted('BEGIN; DROP ROLE r1; ROLLBACK')).toBe(true);
      counted('SELECT 1');
      expect(counted('SELECT 1')).toBe(false);
    } finally {
      await engine.close();
    }
  });

  it('counts oids in the range it is given, also after a restart on its cluster', async () => {
    const paths = await installAndInitIn(await tempRoot());
    const oidOf = async (runtime: InteractiveRuntime, table: string) => {
      const output = await runtime.execInteractive(
        serialize.query(`CREATE TABLE ${table} (a int); SELECT '${table}'::regclass::oid::int8`),
      );
      return Number(dataRows(output)[0]![0]);
    };
    const rangeStart = 16384 + 3 * 2 ** 24;
    let runtime = await InteractiveRuntime.start(paths, { oidRange: 3 });
    const first = await oidOf(runtime, 'first');
    await runtime.close();
    runtime = await InteractiveRuntime.start(paths, { oidRange: 3 });
    const second = await oidOf(runtime, 'second');
    await runtime.close();
    expect(first).toBeGreaterThanOrEqual(rangeStart);
    expect(second).toBeGreaterThan(first);
    expect(second).toBeLessThan(rangeStart + 2 ** 24);
  });

  it('hands on the record of a client that left only without its objects', async () => {
    const { clients, engine } = await engineWithClientTable();
    try {
      const count = (pid: number) =>
        dataRows(
          execWire(
            engine,
            serialize.query(
              'SELECT (SELECT count(*) FROM pg_prepared_statements) + (SELECT count(*) FROM pg_cursors)',
            ),
            { role: 0, pid },
          ),
        );
      clients.add({ pid: 7, role: 0 });
      execWire(engine, serialize.query('PREPARE kept AS SELECT 1; DECLARE c CURSOR WITH HOLD FOR SELECT 1'), {
        role: 0,
        pid: 7,
      });
      expect(count(7)).toEqual([['2']]);
      // Gone without closing anything: the next client gets the record, with empty tables.
      clients.remove(7);
      clients.add({ pid: 8, role: 0 });
      expect(count(8)).toEqual([['0']]);
    } finally {
      await engine.close();
    }
  });
});

/** Runs `check` on an on-disk engine and on an in-memory one, then closes both. */
/** An in-memory engine that sees a client table, as a proxy's engines do. */
async function engineWithClientTable(): Promise<{ clients: ClientTable; engine: PGlite }> {
  const clients = new ClientTable();
  const template = await prepareTemplate({ cacheDir: await freshCacheDir() });
  const engine = await openMemoryEngine({
    templatePgdata: template.pgdata,
    runtimeRoot: template.runtimeRoot,
    clients: { table: clients },
  });
  return { clients, engine };
}

async function onBothEngines(check: (engine: PGlite) => Promise<void>): Promise<void> {
  const runtime = await InteractiveRuntime.start(await installAndInitIn(await tempRoot()));
  const template = await prepareTemplate({ cacheDir: await freshCacheDir() });
  const memory = await openMemoryEngine({
    templatePgdata: template.pgdata,
    runtimeRoot: template.runtimeRoot,
  });
  try {
    for (const engine of [await runtime.pglite(), memory]) await check(engine);
  } finally {
    await memory.close();
    await runtime.close();
  }
}
