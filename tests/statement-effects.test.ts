import { describe, expect, it } from 'vitest';
import { BACKSLASH_DIALECT, STANDARD_DIALECT } from '../src/protocol/sql-lexer.js';
import { type StatementEffects, statementEffects } from '../src/proxy/sql/statement-effects.js';

/** What statementEffects returns for SQL that names a watched word but has no effect. */
const none: StatementEffects = {
  copyIn: null,
  refusal: null,
  settings: [],
  resets: [],
  touchesSettings: false,
  tempObjects: [],
  discard: null,
  database: null,
};

const effectsWith = (changes: Partial<StatementEffects>): StatementEffects => ({ ...none, ...changes });

const COPY_REFUSAL = {
  code: '0A000',
  message: 'COPY FROM STDIN must be the only statement of its query when served through pglite-oxide',
};

describe('statementEffects: SQL the proxy does not watch', () => {
  it('returns null when the SQL names none of the watched words', () => {
    expect(statementEffects('SELECT 1')).toBeNull();
    expect(statementEffects('INSERT INTO items VALUES (1, 2)')).toBeNull();
    expect(statementEffects('')).toBeNull();
    expect(statementEffects('   \n\t')).toBeNull();
  });

  it('finds no effect when a watched word appears only inside a string, quoted name or word', () => {
    expect(statementEffects("SELECT 'SET work_mem = 1'")).toEqual(none);
    expect(statementEffects("SELECT 'RESET ALL; DISCARD ALL; DEALLOCATE ALL'")).toEqual(none);
    expect(statementEffects('SELECT 1 AS "SET"')).toEqual(none);
    expect(statementEffects('SELECT * FROM items OFFSET 5')).toEqual(none);
    expect(statementEffects('SELECT datname FROM pg_database')).toEqual(none);
    expect(statementEffects("INSERT INTO log VALUES ('CREATE TEMP TABLE t (a int)')")).toEqual(none);
  });

  it('finds no effect when a watched statement is inside a comment', () => {
    expect(statementEffects('-- SET work_mem = 1\nSELECT 1')).toEqual(none);
    expect(statementEffects('/* RESET ALL */ SELECT 1')).toEqual(none);
    expect(statementEffects('/* outer /* inner */ SET work_mem = 1; */ SELECT 1')).toEqual(none);
  });

  it('finds no effect when a watched statement is inside a dollar-quoted string', () => {
    expect(statementEffects('SELECT $$SET work_mem = 1; DISCARD ALL$$')).toEqual(none);
    expect(statementEffects('SELECT $tag$ ; COPY t FROM STDIN; $tag$')).toEqual(none);
  });

  it('reads strings with backslash escapes only in the backslash dialect', () => {
    const sql = "SELECT 'a\\'; SET work_mem = 1; --'";
    // Standard strings end at the quote after the backslash, so a SET follows.
    expect(statementEffects(sql)).toEqual(effectsWith({ settings: ['work_mem'], touchesSettings: true }));
    expect(statementEffects(sql, STANDARD_DIALECT)).toEqual(
      effectsWith({ settings: ['work_mem'], touchesSettings: true }),
    );
    // With backslash escapes the string runs to the last quote and holds the SET.
    expect(statementEffects(sql, BACKSLASH_DIALECT)).toEqual(none);
  });
});

describe('statementEffects: SET', () => {
  it('names the setting a SET changes, folding unquoted names to lower case', () => {
    expect(statementEffects("SET work_mem = '64MB'")).toEqual(
      effectsWith({ settings: ['work_mem'], touchesSettings: true }),
    );
    expect(statementEffects('set search_path TO a, b')).toEqual(
      effectsWith({ settings: ['search_path'], touchesSettings: true }),
    );
    expect(statementEffects('sEt Work_Mem To 1')).toEqual(
      effectsWith({ settings: ['work_mem'], touchesSettings: true }),
    );
    expect(statementEffects('SET work_mem TO DEFAULT')).toEqual(
      effectsWith({ settings: ['work_mem'], touchesSettings: true }),
    );
  });

  it('keeps the case of a quoted setting name', () => {
    expect(statementEffects('SET "TimeZone" = \'UTC\'')).toEqual(
      effectsWith({ settings: ['TimeZone'], touchesSettings: true }),
    );
  });

  it('joins the parts of a custom dotted setting name', () => {
    expect(statementEffects("SET myapp.User_Id = '7'")).toEqual(
      effectsWith({ settings: ['myapp.user_id'], touchesSettings: true }),
    );
    expect(statementEffects('SET "MyApp"."Key" = 1')).toEqual(
      effectsWith({ settings: ['MyApp.Key'], touchesSettings: true }),
    );
  });

  it('reads SET SESSION as a plain SET', () => {
    expect(statementEffects('SET SESSION work_mem = 1')).toEqual(
      effectsWith({ settings: ['work_mem'], touchesSettings: true }),
    );
    expect(statementEffects('SET SESSION ROLE admin')).toEqual(
      effectsWith({ settings: ['role'], touchesSettings: true }),
    );
  });

  it('names the setting behind each special SET form', () => {
    const settingOf = (sql: string) => statementEffects(sql)?.settings;
    expect(settingOf("SET TIME ZONE 'UTC'")).toEqual(['timezone']);
    expect(settingOf("SET NAMES 'UTF8'")).toEqual(['client_encoding']);
    expect(settingOf("SET SCHEMA 'public'")).toEqual(['search_path']);
    expect(settingOf('SET ROLE admin')).toEqual(['role']);
    expect(settingOf('SET ROLE NONE')).toEqual(['role']);
    expect(settingOf("SET role = 'admin'")).toEqual(['role']);
    expect(settingOf('SET XML OPTION DOCUMENT')).toEqual(['xmloption']);
  });

  it('reads a special word followed by a dot as the prefix of a custom setting', () => {
    expect(statementEffects('SET xml.custom = 1')).toEqual(
      effectsWith({ settings: ['xml.custom'], touchesSettings: true }),
    );
    expect(statementEffects('SET role.Name = 1')).toEqual(
      effectsWith({ settings: ['role.name'], touchesSettings: true }),
    );
  });

  it('names session_authorization for SET SESSION AUTHORIZATION', () => {
    expect(statementEffects('SET SESSION AUTHORIZATION admin')).toEqual(
      effectsWith({ settings: ['session_authorization'], touchesSettings: true }),
    );
    expect(statementEffects('set session authorization default')).toEqual(
      effectsWith({ settings: ['session_authorization'], touchesSettings: true }),
    );
  });

  it('names the three default transaction settings for SET SESSION CHARACTERISTICS', () => {
    expect(
      statementEffects('SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE'),
    ).toEqual(
      effectsWith({
        settings: [
          'default_transaction_isolation',
          'default_transaction_read_only',
          'default_transaction_deferrable',
        ],
        touchesSettings: true,
      }),
    );
  });

  it('finds no session setting in SET LOCAL, SET TRANSACTION, SET CONSTRAINTS or a bare SET', () => {
    expect(statementEffects('SET LOCAL work_mem = 1')).toEqual(none);
    expect(statementEffects('set local role admin')).toEqual(none);
    expect(statementEffects('SET LOCAL SESSION AUTHORIZATION admin')).toEqual(none);
    expect(statementEffects('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE')).toEqual(none);
    expect(statementEffects('SET CONSTRAINTS ALL DEFERRED')).toEqual(none);
    expect(statementEffects('SET')).toEqual(none);
  });

  it('finds a SET after leading whitespace and comments', () => {
    expect(statementEffects('  \n-- note\n/* block /* nested */ */ SET work_mem = 1')).toEqual(
      effectsWith({ settings: ['work_mem'], touchesSettings: true }),
    );
  });

  it('joins at most the dotted parts within the first eight tokens', () => {
    expect(statementEffects('SET a.b.c.d.e = 1')).toEqual(
      effectsWith({ settings: ['a.b.c.d'], touchesSettings: true }),
    );
  });
});

describe('statementEffects: set_config()', () => {
  it('marks a call of set_config as touching settings without naming any', () => {
    expect(statementEffects("SELECT set_config('search_path', 'a', false)")).toEqual(
      effectsWith({ touchesSettings: true }),
    );
    expect(statementEffects("SELECT SET_CONFIG('work_mem', '1MB', true)")).toEqual(
      effectsWith({ touchesSettings: true }),
    );
    expect(statementEffects("DO $$ BEGIN PERFORM set_config('work_mem', '1MB', false); END $$")).toEqual(
      effectsWith({ touchesSettings: true }),
    );
  });
});

describe('statementEffects: RESET', () => {
  it('names the setting a RESET undoes, in lower case', () => {
    expect(statementEffects('RESET work_mem')).toEqual(
      effectsWith({ resets: ['work_mem'], touchesSettings: true }),
    );
    expect(statementEffects('reset Search_Path')).toEqual(
      effectsWith({ resets: ['search_path'], touchesSettings: true }),
    );
    expect(statementEffects('RESET "Work_Mem"')).toEqual(
      effectsWith({ resets: ['work_mem'], touchesSettings: true }),
    );
    expect(statementEffects('RESET MyApp.Key')).toEqual(
      effectsWith({ resets: ['myapp.key'], touchesSettings: true }),
    );
  });

  it('reads RESET ALL as *', () => {
    expect(statementEffects('RESET ALL')).toEqual(effectsWith({ resets: ['*'], touchesSettings: true }));
    expect(statementEffects('reset all')).toEqual(effectsWith({ resets: ['*'], touchesSettings: true }));
  });

  it('names the setting behind each special RESET form', () => {
    const resetsOf = (sql: string) => statementEffects(sql)?.resets;
    expect(resetsOf('RESET SESSION AUTHORIZATION')).toEqual(['session_authorization']);
    expect(resetsOf('RESET TIME ZONE')).toEqual(['timezone']);
    expect(resetsOf('RESET ROLE')).toEqual(['role']);
    expect(resetsOf('RESET NAMES')).toEqual(['client_encoding']);
    expect(resetsOf('RESET SCHEMA')).toEqual(['search_path']);
    expect(resetsOf('RESET XML OPTION')).toEqual(['xmloption']);
    expect(resetsOf('RESET names.Custom')).toEqual(['names.custom']);
  });

  it('finds nothing in a bare RESET', () => {
    expect(statementEffects('RESET')).toEqual(none);
  });
});

describe('statementEffects: DISCARD', () => {
  it('reads DISCARD ALL as a reset of every setting and a discard of everything', () => {
    expect(statementEffects('DISCARD ALL')).toEqual(
      effectsWith({ resets: ['*'], discard: 'ALL', touchesSettings: true }),
    );
    expect(statementEffects('discard all;')).toEqual(
      effectsWith({ resets: ['*'], discard: 'ALL', touchesSettings: true }),
    );
  });

  it('reads DISCARD TEMP and DISCARD TEMPORARY as a discard of temporary objects only', () => {
    expect(statementEffects('DISCARD TEMP')).toEqual(effectsWith({ discard: 'TEMP' }));
    expect(statementEffects('discard temporary')).toEqual(effectsWith({ discard: 'TEMP' }));
  });

  it('finds nothing in DISCARD PLANS or DISCARD SEQUENCES', () => {
    expect(statementEffects('DISCARD PLANS')).toEqual(none);
    expect(statementEffects('DISCARD SEQUENCES')).toEqual(none);
  });
});

describe('statementEffects: CREATE, DROP and RENAME of a DATABASE', () => {
  it('reads CREATE DATABASE with the name the engine would use', () => {
    expect(statementEffects('CREATE DATABASE App')).toEqual(
      effectsWith({ database: { action: 'create', name: 'app', force: false, template: null } }),
    );
    expect(statementEffects('create database "App" TEMPLATE template0')).toEqual(
      effectsWith({ database: { action: 'create', name: 'App', force: false, template: 'template0' } }),
    );
    expect(
      statementEffects('CREATE DATABASE t1 WITH OWNER = app TEMPLATE = "Tmpl" STRATEGY file_copy'),
    ).toEqual(effectsWith({ database: { action: 'create', name: 't1', force: false, template: 'Tmpl' } }));
  });

  it('reads DROP DATABASE, with or without IF EXISTS', () => {
    expect(statementEffects('DROP DATABASE app')).toEqual(
      effectsWith({ database: { action: 'drop', name: 'app', force: false, template: null } }),
    );
    expect(statementEffects('drop database if exists "App"')).toEqual(
      effectsWith({ database: { action: 'drop', name: 'App', force: false, template: null } }),
    );
  });

  it('reads FORCE after the name, with or without WITH', () => {
    expect(statementEffects('DROP DATABASE app WITH (FORCE)')).toEqual(
      effectsWith({ database: { action: 'drop', name: 'app', force: true, template: null } }),
    );
    expect(statementEffects('DROP DATABASE IF EXISTS app (force)')).toEqual(
      effectsWith({ database: { action: 'drop', name: 'app', force: true, template: null } }),
    );
  });

  it('does not take a name containing FORCE for the FORCE option', () => {
    expect(statementEffects('DROP DATABASE force_db')).toEqual(
      effectsWith({ database: { action: 'drop', name: 'force_db', force: false, template: null } }),
    );
  });

  it('reads ALTER DATABASE ... RENAME TO', () => {
    expect(statementEffects('ALTER DATABASE app RENAME TO "Other"')).toEqual(
      effectsWith({
        database: { action: 'rename', name: 'app', newName: 'Other', force: false, template: null },
      }),
    );
  });

  it('finds no database statement without a name, or in another ALTER DATABASE', () => {
    expect(statementEffects('DROP DATABASE IF EXISTS')).toEqual(none);
    expect(statementEffects('DROP DATABASE')).toEqual(none);
    expect(statementEffects('CREATE DATABASE')).toEqual(none);
    expect(statementEffects('ALTER DATABASE app RENAME other')).toEqual(none);
    expect(statementEffects('ALTER DATABASE app SET work_mem = 1')).toEqual(none);
  });
});

describe('statementEffects: temporary objects', () => {
  it('names the temporary table, view or sequence a CREATE makes', () => {
    expect(statementEffects('CREATE TEMP TABLE Scratch (a int)')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'TABLE', name: 'scratch' }] }),
    );
    expect(statementEffects('create temporary view v AS SELECT 1')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'VIEW', name: 'v' }] }),
    );
    expect(statementEffects('CREATE TEMP SEQUENCE s')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'SEQUENCE', name: 's' }] }),
    );
    expect(statementEffects('CREATE TEMP TABLE t AS SELECT 1')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'TABLE', name: 't' }] }),
    );
  });

  it('reads LOCAL, GLOBAL, IF NOT EXISTS, the pg_temp schema and quoted names', () => {
    expect(statementEffects('CREATE LOCAL TEMP SEQUENCE s')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'SEQUENCE', name: 's' }] }),
    );
    expect(statementEffects('CREATE GLOBAL TEMPORARY TABLE g (a int)')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'TABLE', name: 'g' }] }),
    );
    expect(statementEffects('CREATE TEMP TABLE IF NOT EXISTS t (a int)')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'TABLE', name: 't' }] }),
    );
    expect(statementEffects('CREATE TEMP TABLE pg_temp.t (a int)')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'TABLE', name: 't' }] }),
    );
    expect(statementEffects('CREATE TEMP TABLE "Mixed Name" (a int)')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'TABLE', name: 'Mixed Name' }] }),
    );
  });

  it('reads OR REPLACE and RECURSIVE views, and objects made in pg_temp without TEMP', () => {
    expect(statementEffects('CREATE OR REPLACE TEMP VIEW v AS SELECT 1')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'VIEW', name: 'v' }] }),
    );
    expect(statementEffects('CREATE TEMP RECURSIVE VIEW r (n) AS SELECT 1')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'VIEW', name: 'r' }] }),
    );
    expect(statementEffects('CREATE TABLE pg_temp.t (a int)')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'TABLE', name: 't' }] }),
    );
    expect(statementEffects('CREATE SEQUENCE IF NOT EXISTS "pg_temp".s')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'SEQUENCE', name: 's' }] }),
    );
  });

  it('names the temporary table a SELECT ... INTO TEMP makes', () => {
    expect(statementEffects('SELECT 1 AS a INTO TEMP t')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'TABLE', name: 't' }] }),
    );
    expect(statementEffects('select * into local temporary table "Copy" from items')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'TABLE', name: 'Copy' }] }),
    );
    expect(statementEffects('SELECT * INTO pg_temp.c FROM items')).toEqual(
      effectsWith({ tempObjects: [{ kind: 'TABLE', name: 'c' }] }),
    );
    expect(statementEffects('SELECT * INTO kept FROM temp_items')).toEqual(none);
    expect(statementEffects("SELECT 'into temp t' AS temp")).toEqual(none);
  });

  it('finds no temporary object in CREATE statements that make none', () => {
    expect(statementEffects('CREATE TABLE temp_log (a int)')).toEqual(none);
    expect(statementEffects('CREATE UNLOGGED TABLE tempo (a int)')).toEqual(none);
    expect(statementEffects('CREATE TEMP FUNCTION f() RETURNS int')).toEqual(none);
    expect(statementEffects('CREATE TEMP TABLE')).toEqual(none);
  });

  it('names every temporary object of a multi-statement string, in order', () => {
    expect(statementEffects('CREATE TEMP TABLE a (x int); CREATE TEMP VIEW b AS SELECT 1')).toEqual(
      effectsWith({
        tempObjects: [
          { kind: 'TABLE', name: 'a' },
          { kind: 'VIEW', name: 'b' },
        ],
      }),
    );
  });
});

describe('statementEffects: COPY', () => {
  it('plans a COPY FROM STDIN as the same statement reading the blob device', () => {
    expect(statementEffects('COPY items FROM STDIN')).toEqual(
      effectsWith({
        copyIn: { loadSql: "COPY items FROM '/dev/blob'", binary: false, columns: 0, relation: ['items'] },
      }),
    );
  });

  it('leaves a trailing semicolon out of the plan and keeps leading comments in it', () => {
    expect(statementEffects('copy items from stdin;')?.copyIn).toEqual({
      loadSql: "copy items from '/dev/blob'",
      binary: false,
      columns: 0,
      relation: ['items'],
    });
    expect(statementEffects('-- load\nCOPY items FROM STDIN')?.copyIn).toEqual({
      loadSql: "-- load\nCOPY items FROM '/dev/blob'",
      binary: false,
      columns: 0,
      relation: ['items'],
    });
  });

  it('counts named columns and reads a qualified, quoted relation name', () => {
    const sql = 'COPY public."Items" (id, "Name") FROM stdin WITH (FORMAT csv, HEADER true)';
    expect(statementEffects(sql)).toEqual(
      effectsWith({
        copyIn: {
          loadSql: 'COPY public."Items" (id, "Name") FROM \'/dev/blob\' WITH (FORMAT csv, HEADER true)',
          binary: false,
          columns: 2,
          relation: ['public', 'Items'],
        },
      }),
    );
  });

  it("reads the binary format from FORMAT binary, FORMAT 'binary' and the old BINARY option", () => {
    const binaryOf = (sql: string) => statementEffects(sql)?.copyIn?.binary;
    expect(binaryOf('COPY t FROM STDIN WITH (FORMAT binary)')).toBe(true);
    expect(binaryOf("COPY t FROM STDIN (FORMAT 'binary')")).toBe(true);
    expect(binaryOf('COPY t FROM STDIN WITH BINARY')).toBe(true);
    // The pre-7.3 spelling PostgreSQL 17 still takes: BINARY before the table's name.
    expect(statementEffects('COPY BINARY t FROM STDIN')?.copyIn).toMatchObject({
      binary: true,
      relation: ['t'],
    });
    expect(binaryOf('COPY t FROM STDIN (FORMAT csv)')).toBe(false);
    expect(binaryOf("COPY t FROM STDIN (FORMAT text, DELIMITER '|')")).toBe(false);
  });

  it('makes no plan for COPY TO, or COPY FROM a file', () => {
    expect(statementEffects('COPY items TO STDOUT')).toEqual(none);
    expect(statementEffects("COPY (SELECT 'FROM STDIN') TO STDOUT")).toEqual(none);
    expect(statementEffects("COPY items FROM '/tmp/items.csv'")).toEqual(none);
    expect(statementEffects('COPY items')).toEqual(none);
  });

  it('refuses a COPY FROM STDIN that shares its query with other statements', () => {
    expect(statementEffects('COPY items FROM STDIN; SELECT 1')).toEqual(
      effectsWith({ refusal: COPY_REFUSAL }),
    );
    expect(statementEffects('SELECT 1; COPY items FROM STDIN')).toEqual(
      effectsWith({ refusal: COPY_REFUSAL }),
    );
  });

  it('does not refuse a COPY TO that shares its query with other statements', () => {
    expect(statementEffects('COPY items TO STDOUT; SELECT 1')).toEqual(none);
  });
});

describe('statementEffects: multi-statement strings', () => {
  it('gathers the effects of every statement', () => {
    const sql = [
      "SET work_mem = '1MB'",
      'RESET search_path',
      'LISTEN jobs',
      'UNLISTEN done',
      'PREPARE q AS SELECT 1',
      'DEALLOCATE old',
      'CREATE TEMP TABLE scratch (a int)',
      'DISCARD TEMP',
      "SELECT 'SET ignored = 1'",
    ].join('; ');
    expect(statementEffects(sql)).toEqual(
      effectsWith({
        settings: ['work_mem'],
        resets: ['search_path'],
        touchesSettings: true,
        tempObjects: [{ kind: 'TABLE', name: 'scratch' }],
        discard: 'TEMP',
      }),
    );
  });

  it('does not split on a semicolon inside strings, dollar quotes or comments', () => {
    expect(
      statementEffects("SELECT ';SET a = 1'; /* ; RESET b */ SET c = 1; SELECT $$; LISTEN d$$ -- ; LISTEN e"),
    ).toEqual(effectsWith({ settings: ['c'], touchesSettings: true }));
  });

  it('keeps the settings of every SET in order, and every RESET', () => {
    expect(statementEffects('SET a = 1; SET LOCAL b = 2; SET TIME ZONE 0; RESET ALL; RESET c')).toEqual(
      effectsWith({ settings: ['a', 'timezone'], resets: ['*', 'c'], touchesSettings: true }),
    );
  });
});
