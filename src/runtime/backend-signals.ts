// pg_cancel_backend(pid) and pg_terminate_backend(pid) for the proxy's clients: each client's pid
// is the one pg_backend_pid() answers it, and these built-ins reach that client, with
// PostgreSQL's permission rules checked by PostgreSQL's own functions (the caller's current
// role, superuser_arg, has_privs_of_role): a superuser may signal anyone; a role may signal the
// clients of roles whose privileges it has, or any but superusers' with pg_signal_backend. The
// signal is left in the client table; the proxy delivers it when the call is over. Private engine
// parts: tests/engine-internals.test.ts watches them.
import { type BuiltinFunction, replaceBuiltin } from './builtin-functions.js';
import type { ClientSignal, ClientTableHolder } from './client-table.js';
import { ERROR, REPORTING_ENTRY_POINTS, type ReportingModule, report, WARNING } from './engine-errors.js';

interface SignalModule extends ReportingModule {
  HEAPU32: Uint32Array;
  HEAP32: Int32Array;
  HEAP16: Int16Array;
  addFunction(fn: (fcinfo: number) => number, signature: string): number;
  _GetUserId(): number;
  _superuser_arg(role: number): number;
  _has_privs_of_role(member: number, role: number): number;
}

const ENTRY_POINTS = [
  ...REPORTING_ENTRY_POINTS,
  '_GetUserId',
  '_superuser_arg',
  '_has_privs_of_role',
] as const;

const PG_CANCEL_BACKEND: BuiltinFunction = { oid: 2171, name: 'pg_cancel_backend', nargs: 1 };
const PG_TERMINATE_BACKEND: BuiltinFunction = { oid: 2096, name: 'pg_terminate_backend', nargs: 2 };
/** FunctionCallInfoBaseData.args on wasm32: after flinfo, context, resultinfo, fncollation, isnull, nargs. */
const FCINFO_ARGS = 20;
/** The pg_signal_backend role's oid. */
const PG_SIGNAL_BACKEND = 4200;

/** Makes pg_cancel_backend and pg_terminate_backend reach the clients of `holder`'s table; false when they cannot be installed. */
export function installBackendSignals(module: object, holder: ClientTableHolder, engineOid: number): boolean {
  const candidate = module as Partial<SignalModule>;
  if (ENTRY_POINTS.some((name) => typeof candidate[name] !== 'function')) return false;
  const engine = candidate as SignalModule;
  const signal = (kind: ClientSignal) => (fcinfo: number) =>
    signalBackend(engine, holder, kind, engine.HEAP32[(fcinfo + FCINFO_ARGS) >> 2]!, engineOid);
  return (
    replaceBuiltin(engine, PG_CANCEL_BACKEND, signal('cancel')) &&
    replaceBuiltin(engine, PG_TERMINATE_BACKEND, signal('terminate'))
  );
}

/** What PostgreSQL's pg_signal_backend does, for a client's pid: the Datum of its boolean answer. */
function signalBackend(
  engine: SignalModule,
  holder: ClientTableHolder,
  kind: ClientSignal,
  pid: number,
  engineOid: number,
): number {
  const found = holder.table?.find(pid);
  if (!found) {
    report(engine, WARNING, '01000', `PID ${pid} is not a PostgreSQL backend process`);
    return 0;
  }
  // The engine's own user logs in without a look-up: its role is the engine's login.
  const target = { ...found, role: found.role === 0 ? engineOid : found.role };
  const caller = engine._GetUserId();
  const what = kind === 'cancel' ? 'cancel query' : 'terminate process';
  const whose = kind === 'cancel' ? 'cancel queries' : 'terminate processes';
  if (engine._superuser_arg(target.role) && !engine._superuser_arg(caller)) {
    report(
      engine,
      ERROR,
      '42501',
      `permission denied to ${what}`,
      `Only roles with the SUPERUSER attribute may ${whose} of roles with the SUPERUSER attribute.`,
    );
  }
  if (
    !engine._has_privs_of_role(caller, target.role) &&
    !engine._has_privs_of_role(caller, PG_SIGNAL_BACKEND)
  ) {
    const object = kind === 'cancel' ? 'query is being canceled' : 'process is being terminated';
    report(
      engine,
      ERROR,
      '42501',
      `permission denied to ${what}`,
      `Only roles with privileges of the role whose ${object} or with privileges of the "pg_signal_backend" role may ${kind === 'cancel' ? 'cancel this query' : 'terminate this process'}.`,
    );
  }
  return holder.table!.signal(pid, kind) ? 1 : 0;
}
