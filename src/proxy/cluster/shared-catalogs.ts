// PostgreSQL keeps some catalogs once per cluster: roles, their memberships, per-role and
// per-database settings, comments on roles and databases, parameter grants, the list of databases
// and which objects of each database depend on a role (pg_shdepend, which DROP ROLE checks). The proxy serves each database from an engine of its own, whose copies of these
// catalogs must read the same: what one engine commits to them is merged into the cluster's own
// copy (a diff against what that engine last had, so that two engines' changes both survive), and
// each engine is brought to the cluster's copy before any client's unit runs on it.
import { serialize } from 'pg-protocol';
import { readRows } from '../../protocol/backend-rows.js';

/** A shared catalog, the columns that identify a row, and the columns the cluster keeps of it. */
interface SharedCatalog {
  table: string;
  key: readonly string[];
  columns: readonly string[];
  /** Columns each engine keeps its own value of (pg_database's horizons of its own transactions). */
  local?: readonly string[];
}

/** A row of pg_shdepend is all its columns: no two rows that differ mean the same. */
const SHDEPEND_COLUMNS = ['dbid', 'classid', 'objid', 'objsubid', 'refclassid', 'refobjid', 'deptype'];

const CATALOGS: readonly SharedCatalog[] = [
  {
    table: 'pg_authid',
    key: ['oid'],
    columns: [
      'oid',
      'rolname',
      'rolsuper',
      'rolinherit',
      'rolcreaterole',
      'rolcreatedb',
      'rolcanlogin',
      'rolreplication',
      'rolbypassrls',
      'rolconnlimit',
      'rolpassword',
      'rolvaliduntil',
    ],
  },
  {
    table: 'pg_auth_members',
    key: ['oid'],
    columns: ['oid', 'roleid', 'member', 'grantor', 'admin_option', 'inherit_option', 'set_option'],
  },
  {
    table: 'pg_database',
    key: ['oid'],
    columns: [
      'oid',
      'datname',
      'datdba',
      'encoding',
      'datlocprovider',
      'datistemplate',
      'datallowconn',
      'dathasloginevt',
      'datconnlimit',
      'dattablespace',
      'datcollate',
      'datctype',
      'datlocale',
      'daticurules',
      'datcollversion',
      'datacl',
    ],
    local: ['datfrozenxid', 'datminmxid'],
  },
  {
    table: 'pg_db_role_setting',
    key: ['setdatabase', 'setrole'],
    columns: ['setdatabase', 'setrole', 'setconfig'],
  },
  { table: 'pg_shdescription', key: ['objoid', 'classoid'], columns: ['objoid', 'classoid', 'description'] },
  { table: 'pg_parameter_acl', key: ['oid'], columns: ['oid', 'parname', 'paracl'] },
  {
    table: 'pg_shdepend',
    key: SHDEPEND_COLUMNS,
    columns: SHDEPEND_COLUMNS,
  },
];

type Row = Record<string, unknown>;

/** The shared catalogs as one engine (or the cluster) has them: each table's rows by key. */
export type SharedCatalogs = ReadonlyMap<string, ReadonlyMap<string, string>>;

/** What changed between two states: each table's rows by key, null for a row deleted. */
export type CatalogChanges = Map<string, Map<string, string | null>>;

const q = (table: string) => `pg_catalog.${table}`;

/**
 * The Query that reads the shared catalogs as one JSON document, as the engine's superuser.
 * Qualified throughout: no function or operator of a client's may stand in for pg_catalog's.
 */
export const SHARED_CATALOGS_QUERY = serialize.query(
  `SELECT pg_catalog.json_build_object(${CATALOGS.map(
    ({ table, columns }) =>
      `'${table}', (SELECT pg_catalog.json_agg(t) FROM (SELECT ${columns.join(', ')} FROM ${q(table)}) t)`,
  ).join(', ')})::pg_catalog.text`,
);

/**
 * The Query that reads the rows of pg_shdepend of the engine's own database, as
 * SHARED_CATALOGS_QUERY would (readSharedCatalogs reads it, the other catalogs empty).
 */
export const OWN_DEPENDENCIES_QUERY = serialize.query(
  `SELECT pg_catalog.json_build_object('pg_shdepend', (SELECT pg_catalog.json_agg(t) FROM (SELECT ` +
    `${SHDEPEND_COLUMNS.join(', ')} FROM ${q('pg_shdepend')} WHERE dbid OPERATOR(pg_catalog.=) ` +
    `(SELECT oid FROM ${q('pg_database')} WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())) t))::pg_catalog.text`,
);

/** The shared catalogs from SHARED_CATALOGS_QUERY's output; throws when the engine answered an error. */
export function readSharedCatalogs(output: Uint8Array): SharedCatalogs {
  const { rows, error } = readRows(output);
  if (error) throw new Error(`reading the shared catalogs failed: ${error.message}`);
  const json = rows.at(-1)?.[0];
  if (!json) throw new Error('reading the shared catalogs returned nothing');
  const document = JSON.parse(json) as Record<string, Row[] | null>;
  const catalogs = new Map<string, Map<string, string>>();
  for (const { table, key } of CATALOGS) {
    const rows = new Map<string, string>();
    for (const row of document[table] ?? []) rows.set(keyOf(row, key), JSON.stringify(row));
    catalogs.set(table, rows);
  }
  return catalogs;
}

function keyOf(row: Row, key: readonly string[]): string {
  return key.map((column) => String(row[column])).join('/');
}

/** What `now` changed of `base`; null when nothing. */
export function changesBetween(base: SharedCatalogs, now: SharedCatalogs): CatalogChanges | null {
  const changes: CatalogChanges = new Map();
  let any = false;
  for (const { table } of CATALOGS) {
    const before = base.get(table) ?? new Map<string, string>();
    const after = now.get(table) ?? new Map<string, string>();
    const changed = new Map<string, string | null>();
    for (const [key, row] of after) if (before.get(key) !== row) changed.set(key, row);
    for (const key of before.keys()) if (!after.has(key)) changed.set(key, null);
    if (changed.size > 0) any = true;
    changes.set(table, changed);
  }
  return any ? changes : null;
}

/**
 * `cluster` with the rows of pg_shdepend of database `oid` as `engine` has them, or null when they
 * are the same: that database's engine alone writes them (its objects' owners and grants), so
 * they are taken whole, also from an engine that never shared them before (opened again).
 */
export function withOwnDependencies(
  cluster: SharedCatalogs,
  engine: SharedCatalogs,
  oid: number,
): SharedCatalogs | null {
  const ours = (rows: ReadonlyMap<string, string> | undefined) =>
    new Map([...(rows ?? [])].filter(([key]) => key.startsWith(`${oid}/`)));
  const had = ours(cluster.get('pg_shdepend'));
  const has = ours(engine.get('pg_shdepend'));
  if (had.size === has.size && [...has.keys()].every((key) => had.has(key))) return null;
  const rows = new Map([...(cluster.get('pg_shdepend') ?? [])].filter(([key]) => !had.has(key)));
  for (const [key, row] of has) rows.set(key, row);
  return new Map([...cluster, ['pg_shdepend', rows]]);
}

/** `catalogs` with `changes` made. */
export function withChanges(catalogs: SharedCatalogs, changes: CatalogChanges): SharedCatalogs {
  const result = new Map<string, Map<string, string>>();
  for (const { table } of CATALOGS) {
    const rows = new Map(catalogs.get(table));
    for (const [key, row] of changes.get(table) ?? []) {
      if (row === null) rows.delete(key);
      else rows.set(key, row);
    }
    result.set(table, rows);
  }
  return result;
}

/** A database as the cluster lists it. */
export interface ClusterDatabase {
  oid: number;
  /** Its owner's oid (datdba). */
  owner: number;
  allowConnections: boolean;
  connectionLimit: number;
  isTemplate: boolean;
}

/** The databases of `catalogs`, by name. */
export function databasesOf(catalogs: SharedCatalogs): Map<string, ClusterDatabase> {
  const databases = new Map<string, ClusterDatabase>();
  for (const json of catalogs.get('pg_database')?.values() ?? []) {
    const row = JSON.parse(json) as Row;
    databases.set(String(row.datname), {
      oid: Number(row.oid),
      owner: Number(row.datdba),
      allowConnections: row.datallowconn === true,
      connectionLimit: Number(row.datconnlimit),
      isTemplate: row.datistemplate === true,
    });
  }
  return databases;
}

/**
 * Frames that bring an engine's shared catalogs to `catalogs`, as its superuser, in one implicit
 * transaction (all of it or nothing): rows gone are deleted, rows that differ updated, rows
 * missing inserted, under the keys (oids) the cluster gave them. The rows travel as a bound
 * parameter: no text of theirs (a role's name, a comment) becomes SQL. pg_database keeps the
 * engine's own horizons of its transactions.
 */
export function applyFrames(catalogs: SharedCatalogs): Buffer {
  const frames: Buffer[] = [];
  for (const { table, key, columns, local } of CATALOGS) {
    const rows = `[${[...(catalogs.get(table)?.values() ?? [])].join(',')}]`;
    const source = `pg_catalog.json_populate_recordset(NULL::${q(table)}, $1::pg_catalog.json) c`;
    const list = (alias: string, names: readonly string[]) =>
      names.map((name) => `${alias}.${name}`).join(', ');
    const sameKey = key.map((column) => `a.${column} OPERATOR(pg_catalog.=) c.${column}`).join(' AND ');
    const values = columns.filter((column) => !key.includes(column));
    const statements = [
      `DELETE FROM ${q(table)} a WHERE NOT EXISTS (SELECT FROM ${source} WHERE ${sameKey})`,
      ...(values.length === 0
        ? []
        : [
            `UPDATE ${q(table)} a SET (${values.join(', ')}) = ROW(${list('c', values)}) FROM ${source} ` +
              `WHERE ${sameKey} AND ROW(${list('a', values)}) IS DISTINCT FROM ROW(${list('c', values)})`,
          ]),
      local
        ? `INSERT INTO ${q(table)} (${[...columns, ...local].join(', ')}) SELECT ${list('c', columns)}, ` +
          `${list('o', local)} FROM ${source}, (SELECT ${local.join(', ')} FROM ${q(table)} ` +
          'WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()) o ' +
          `WHERE NOT EXISTS (SELECT FROM ${q(table)} a WHERE ${sameKey})`
        : `INSERT INTO ${q(table)} (${columns.join(', ')}) SELECT ${list('c', columns)} FROM ${source} ` +
          `WHERE NOT EXISTS (SELECT FROM ${q(table)} a WHERE ${sameKey})`,
    ];
    for (const sql of statements) {
      frames.push(serialize.parse({ text: sql }), serialize.bind({ values: [rows] }), serialize.execute({}));
    }
  }
  frames.push(serialize.sync());
  return Buffer.concat(frames);
}
