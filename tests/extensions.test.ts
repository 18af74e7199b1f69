import pg from 'pg';
import { InteractiveRuntime, installAndInitIn } from 'pglite-oxide';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServedEngine } from './helpers/proxy-engine.js';
import { tempRoot } from './helpers/temp-root.js';
import { dataRows, decodeBackend } from './helpers/wire.js';

/** Each extension the pinned engine ships, and a statement that uses it: its first value is checked. */
const EXTENSIONS: Array<[name: string, sql: string, expected: unknown]> = [
  ['age', 'SET search_path = ag_catalog, "$user", public; SELECT create_graph($$people$$)::text', ''],
  ['amcheck', "SELECT bt_index_check('pg_class_oid_index')::text", ''],
  ['bloom', 'CREATE TABLE bloomed (a int); CREATE INDEX ON bloomed USING bloom (a); SELECT 1', 1],
  ['btree_gin', 'CREATE TABLE gin_ints (a int); CREATE INDEX ON gin_ints USING gin (a); SELECT 1', 1],
  ['btree_gist', 'CREATE TABLE gist_ints (a int); CREATE INDEX ON gist_ints USING gist (a); SELECT 1', 1],
  ['citext', "SELECT 'Ada'::citext = 'ADA'", true],
  ['cube', 'SELECT cube_dim(cube(1, 2))', 1],
  ['dict_int', "SELECT ts_lexize('intdict', '12345678')::text", '{123456}'],
  ['dict_xsyn', "SELECT ts_lexize('xsyn', 'nothing')::text", null],
  ['earthdistance', 'SELECT earth_distance(ll_to_earth(0, 0), ll_to_earth(0, 1)) > 100000', true],
  ['file_fdw', 'CREATE SERVER files FOREIGN DATA WRAPPER file_fdw; SELECT 1', 1],
  ['fuzzystrmatch', "SELECT levenshtein('kitten', 'sitting')", 3],
  ['hstore', "SELECT 'a=>1'::hstore -> 'a'", '1'],
  ['intarray', "SELECT ('{1,2}'::int[] & '{2,3}'::int[])::text", '{2}'],
  ['isn', "SELECT '9780393040029'::ean13::text", '978-0-393-04002-9'],
  ['lo', 'SELECT 7::lo::text', '7'],
  ['ltree', "SELECT 'a.b'::ltree @> 'a.b.c'", true],
  ['pageinspect', "SELECT count(*)::int FROM page_header(get_raw_page('pg_class', 0))", 1],
  ['pg_buffercache', 'SELECT count(*) > 0 FROM pg_buffercache', true],
  ['pg_freespacemap', "SELECT count(*) > 0 FROM pg_freespace('pg_class')", true],
  ['pg_hashids', 'SELECT id_decode(id_encode(1001))::text', '{1001}'],
  [
    'pg_ivm',
    "CREATE TABLE ivm_base (a int); SELECT pgivm.create_immv('ivm_view', 'SELECT a FROM ivm_base')",
    '0',
  ],
  ['pg_surgery', "SELECT heap_force_freeze('pg_class'::regclass, ARRAY[]::tid[])::text", ''],
  [
    'pg_textsearch',
    "CREATE TABLE docs (body text); CREATE INDEX ON docs USING bm25 (body) WITH (text_config = 'english'); SELECT 1",
    1,
  ],
  ['pg_trgm', "SELECT similarity('word', 'word')", 1],
  ['pg_uuidv7', 'SELECT uuid_generate_v7() IS NOT NULL', true],
  ['pg_visibility', "SELECT count(*) > 0 FROM pg_visibility_map('pg_class')", true],
  [
    'pg_walinspect',
    'SELECT (pg_get_wal_record_info((SELECT checkpoint_lsn FROM pg_control_checkpoint()))).resource_manager',
    'XLOG',
  ],
  [
    'pgcrypto',
    "SELECT encode(digest('abc', 'sha256'), 'hex')",
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  ],
  ['pgtap', 'SELECT plan(1); SELECT ok(true, $$works$$)', 'ok 1 - works'],
  ['postgres_fdw', 'CREATE SERVER elsewhere FOREIGN DATA WRAPPER postgres_fdw; SELECT 1', 1],
  ['seg', "SELECT '1.5'::seg::text", '1.5'],
  ['tablefunc', 'SELECT count(*)::int FROM normal_rand(3, 0, 1)', 3],
  [
    'tcn',
    'CREATE TABLE watched (id int PRIMARY KEY); CREATE TRIGGER watched_tcn AFTER INSERT ON watched FOR EACH ROW EXECUTE FUNCTION triggered_change_notification(); SELECT 1',
    1,
  ],
  ['tsm_system_rows', 'SELECT count(*)::int FROM pg_class TABLESAMPLE SYSTEM_ROWS(1)', 1],
  ['tsm_system_time', 'SELECT count(*) >= 0 FROM pg_class TABLESAMPLE SYSTEM_TIME(10)', true],
  ['unaccent', "SELECT unaccent('Hôtel')", 'Hotel'],
  ['uuid-ossp', 'SELECT uuid_generate_v4() IS NOT NULL', true],
  ['vector', "SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector", 1],
];

// Every extension of the pinned engine, with no setup: its files reach the engine when
// PostgreSQL first looks for them.
describe('extensions', () => {
  let served: Awaited<ReturnType<typeof startServedEngine>>;
  const client = async () => {
    const connected = new pg.Client({ connectionString: served.proxy.connectionString });
    await connected.connect();
    return connected;
  };

  beforeAll(async () => {
    served = await startServedEngine();
  });
  afterAll(() => served.close());

  it('lists every shipped extension as available', async () => {
    const c = await client();
    try {
      const { rows } = await c.query<{ name: string }>(
        'SELECT name FROM pg_available_extensions ORDER BY name',
      );
      expect(rows.map((row) => row.name)).toEqual([...EXTENSIONS.map(([name]) => name), 'plpgsql'].sort());
    } finally {
      await c.end();
    }
  });

  it.each(EXTENSIONS)('creates %s and uses it', async (name, sql, expected) => {
    const c = await client();
    try {
      await c.query(`CREATE EXTENSION IF NOT EXISTS "${name}" CASCADE`);
      const results = await c.query(sql);
      const last = Array.isArray(results) ? results.at(-1)! : results;
      expect(Object.values(last.rows[0] ?? {})[0]).toEqual(expected);
    } finally {
      await c.end();
    }
  });

  it('loads the two modules with LOAD', async () => {
    const c = await client();
    try {
      await c.query("LOAD 'auto_explain'");
      expect((await c.query('SHOW auto_explain.log_min_duration')).rows).toEqual([
        { 'auto_explain.log_min_duration': '-1' },
      ]);
      await c.query("LOAD 'passwordcheck'");
      await expect(c.query("CREATE ROLE weak PASSWORD 'short'")).rejects.toMatchObject({ code: '22023' });
    } finally {
      await c.end();
    }
  });

  it('dumps a database that uses extensions with pg_dump, and the dump restores into a fresh one', async () => {
    const source = await InteractiveRuntime.start(
      await installAndInitIn(await tempRoot('pglite-oxide-dump-')),
    );
    const target = await InteractiveRuntime.start(
      await installAndInitIn(await tempRoot('pglite-oxide-restore-')),
    );
    try {
      await source.execInteractive(`CREATE EXTENSION citext; CREATE EXTENSION vector;
        CREATE TABLE people (email citext PRIMARY KEY, taste vector(2));
        INSERT INTO people VALUES ('Ada@Example.com', '[1,2]')`);
      const dump = await source.runPgDump(['pg_dump', '--no-owner', '--inserts']);
      expect(dump).toContain('CREATE EXTENSION IF NOT EXISTS citext');
      const restored = decodeBackend(await target.execInteractive(dump!));
      expect(restored.filter((message) => message.name === 'error')).toEqual([]);
      expect(
        dataRows(
          await target.execInteractive(
            "RESET search_path; SELECT email::text, taste <-> '[1,3]' FROM people WHERE email = 'ada@example.com'",
          ),
        ),
      ).toEqual([['Ada@Example.com', '1']]);
    } finally {
      await source.close();
      await target.close();
    }
  });

  it('drops and creates an extension again', async () => {
    const c = await client();
    try {
      await c.query('CREATE EXTENSION IF NOT EXISTS hstore');
      await c.query('DROP EXTENSION hstore CASCADE');
      await expect(c.query("SELECT 'a=>1'::hstore")).rejects.toMatchObject({ code: '42704' });
      await c.query('CREATE EXTENSION hstore');
      expect((await c.query("SELECT 'a=>1'::hstore -> 'a' AS v")).rows).toEqual([{ v: '1' }]);
    } finally {
      await c.end();
    }
  });
});
