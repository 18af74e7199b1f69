// pg_stat_activity with one row a client. The view reads pg_stat_get_activity(), which on the one
// engine session would show one backend for all the proxy's clients; it is replaced with this one,
// which answers from the client table (what the proxy records of each client, see
// client-activity.ts) with PostgreSQL's visibility rules: a caller sees the state, query and
// times of clients of roles whose privileges it has (or with pg_read_all_stats), and
// "<insufficient privilege>" for the others. The engine's own calls, and an engine no proxy serves,
// get PostgreSQL's own answer. Private engine parts: tests/engine-internals.test.ts watches them.
import { type BuiltinFunction, wrapBuiltin } from './builtin-functions.js';
import type { ClientActivity } from './client-activity.js';
import type { ClientTableHolder } from './client-table.js';
import { canQuery, type QueryModule, queryRows } from './engine-queries.js';
import { withCString } from './engine-strings.js';
import {
  returnRows,
  SET_RETURNING_ENTRY_POINTS,
  type SetReturningModule,
  type TextRow,
} from './set-returning.js';

interface ActivityModule extends SetReturningModule, QueryModule {
  HEAP32: Int32Array;
  HEAP16: Int16Array;
  addFunction(fn: (fcinfo: number) => number, signature: string): number;
  _GetUserId(): number;
  _has_privs_of_role(member: number, role: number): number;
  _get_role_oid(name: number, missingOk: number): number;
}

const ENTRY_POINTS = [
  ...SET_RETURNING_ENTRY_POINTS,
  '_GetUserId',
  '_has_privs_of_role',
  '_get_role_oid',
] as const;

const PG_STAT_GET_ACTIVITY: BuiltinFunction = { oid: 2022, name: 'pg_stat_get_activity', nargs: 1 };
/** FunctionCallInfoBaseData.args on wasm32: the first argument's value and its isnull. */
const ARG_VALUE = 20;
const ARG_ISNULL = 24;
/** The pg_read_all_stats role's oid. */
const PG_READ_ALL_STATS = 3375;
/** pg_stat_get_activity's result columns in PostgreSQL 17, in order. */
const COLUMNS = [
  'datid',
  'pid',
  'usesysid',
  'application_name',
  'state',
  'query',
  'wait_event_type',
  'wait_event',
  'xact_start',
  'query_start',
  'backend_start',
  'state_change',
  'client_addr',
  'client_hostname',
  'client_port',
  'backend_xid',
  'backend_xmin',
  'backend_type',
  'ssl',
  'sslversion',
  'sslcipher',
  'sslbits',
  'ssl_client_dn',
  'ssl_client_serial',
  'ssl_issuer_dn',
  'gss_auth',
  'gss_princ',
  'gss_enc',
  'gss_delegation',
  'leader_pid',
  'query_id',
] as const;
type Column = (typeof COLUMNS)[number];

/**
 * Makes pg_stat_activity show the clients of `holder`'s table; false when it cannot be installed
 * (pg_stat_activity then shows the engine's one backend).
 */
export function installActivityView(
  module: object,
  holder: ClientTableHolder,
  callerPid: () => number,
  functionTable: WebAssembly.Table | null,
): boolean {
  const candidate = module as Partial<ActivityModule>;
  if (!functionTable || ENTRY_POINTS.some((name) => typeof candidate[name] !== 'function')) return false;
  if (!canQuery(candidate)) return false;
  const engine = candidate as ActivityModule;
  return wrapBuiltin(engine, PG_STAT_GET_ACTIVITY, (original) => {
    const postgres = functionTable.get(original) as (fcinfo: number) => number;
    return (fcinfo) => {
      const table = holder.table;
      if (!table || callerPid() === 0) return postgres(fcinfo);
      const only = engine.HEAPU8[fcinfo + ARG_ISNULL] ? null : engine.HEAP32[(fcinfo + ARG_VALUE) >> 2]!;
      const caller = engine._GetUserId();
      const clients = table.activities().filter((client) => only === null || client.pid === only);
      // Databases by name as this engine's catalog has them (their engines are apart).
      const databases = new Map<string, string>();
      if (clients.length > 0) {
        for (const [oid, name] of queryRows(engine, 'SELECT oid, datname FROM pg_catalog.pg_database'))
          databases.set(name!, oid!);
      }
      const rows = clients.map((client) =>
        activityRow(
          engine,
          caller,
          client.pid,
          client.activity,
          databases.get(client.activity.database) ?? null,
        ),
      );
      return returnRows(engine, fcinfo, rows, 'record');
    };
  });
}

function activityRow(
  engine: ActivityModule,
  caller: number,
  pid: number,
  activity: ClientActivity,
  database: string | null,
): TextRow {
  const role = roleOid(engine, activity.user);
  const values = new Map<Column, string | null>([
    ['datid', database],
    ['pid', String(pid)],
    ['usesysid', role === 0 ? null : String(role)],
    ['application_name', activity.applicationName],
  ]);
  const permitted =
    engine._has_privs_of_role(caller, PG_READ_ALL_STATS) ||
    (role !== 0 && engine._has_privs_of_role(caller, role));
  if (!permitted) {
    values.set('query', '<insufficient privilege>');
  } else {
    const idle = activity.state === 'idle' && !activity.waiting;
    values.set('state', activity.state);
    values.set('query', activity.query);
    // A client idle in its session waits for its next message, as PostgreSQL says of its own.
    values.set('wait_event_type', activity.waiting ? 'Lock' : idle ? 'Client' : null);
    values.set('wait_event', activity.waiting ?? (idle ? 'ClientRead' : null));
    values.set('xact_start', timestamp(activity.xactStart));
    values.set('query_start', timestamp(activity.queryStart));
    values.set('backend_start', timestamp(activity.backendStart));
    values.set('state_change', timestamp(activity.stateChange));
    values.set('client_addr', activity.address);
    values.set('client_port', String(activity.port));
    values.set('backend_type', 'client backend');
    for (const flag of ['ssl', 'gss_auth', 'gss_enc', 'gss_delegation'] as const) values.set(flag, 'false');
  }
  return COLUMNS.map((column) => values.get(column) ?? null);
}

/** A role's oid by name in this engine's catalog; 0 when it has none. */
function roleOid(engine: ActivityModule, name: string): number {
  return withCString(engine, name, (pointer) => engine._get_role_oid(pointer, 1) >>> 0);
}

/** A time as timestamptz's input reads it, to the microsecond; null for none. */
function timestamp(ms: number | null): string | null {
  if (ms === null) return null;
  const whole = Math.floor(ms);
  const micros = Math.round((ms - whole) * 1000);
  const date = new Date(whole);
  const fraction = String(date.getUTCMilliseconds() * 1000 + Math.min(micros, 999)).padStart(6, '0');
  return `${date.toISOString().slice(0, 19)}.${fraction}+00`;
}
