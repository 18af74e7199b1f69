// The proxy answers logins from a copy of the roles it keeps (see proxy/login/roles.ts), so that
// a login never waits for an engine another client holds. The engine tells it when that copy may
// be out of date, and when the catalogs the cluster's databases share changed (see
// proxy/cluster/shared-catalogs.ts): PostgreSQL announces every change of pg_authid,
// pg_auth_members, pg_database and pg_parameter_acl as invalidations of the catalog caches over them, whatever made it (CREATE,
// ALTER and DROP ROLE, GRANT of a role or of SET on a parameter, a DO block's EXECUTE, a
// superuser's UPDATE of the catalog, the rollback of any of these). A callback on those caches
// counts them in the client table. Private engine parts: the proxy checks the callback works on
// each engine it serves (a role created and rolled back must be counted) and otherwise reads the
// roles at every login.
import type { ClientTableHolder } from './client-table.js';

interface SyscacheModule {
  addFunction(fn: (...args: number[]) => void, signature: string): number;
  _CacheRegisterSyscacheCallback(cacheId: number, callback: number, arg: number): void;
  _RegisterXactCallback(callback: number, arg: number): void;
  _CommandCounterIncrement(): void;
}

/**
 * PostgreSQL 17's SysCacheIdentifier values of the caches over the catalogs that decide a login,
 * and that the cluster's databases share: AUTHMEMMEMROLE, AUTHMEMROLEMEM, AUTHNAME, AUTHOID,
 * DATABASEOID, PARAMETERACLNAME, PARAMETERACLOID.
 */
const ROLE_CACHES = [8, 9, 10, 11, 21, 41, 42];

/** XactEvent's XACT_EVENT_PRE_COMMIT. */
const PRE_COMMIT = 5;

/** Counts role changes in `clients`' table; false when the engine lacks what it takes. */
export function installRoleChanges(module: object, clients: ClientTableHolder): boolean {
  const engine = module as Partial<SyscacheModule>;
  const parts = [
    'addFunction',
    '_CacheRegisterSyscacheCallback',
    '_RegisterXactCallback',
    '_CommandCounterIncrement',
  ];
  if (parts.some((part) => typeof engine[part as keyof SyscacheModule] !== 'function')) return false;
  const found = engine as SyscacheModule;
  const counted = found.addFunction(() => clients.table?.rolesChanged(), 'viii');
  for (const cache of ROLE_CACHES) found._CacheRegisterSyscacheCallback(cache, counted, 0);
  // A statement's own changes reach its caches at the next command; the last statement of a
  // transaction would be counted only when the next transaction begins. One more command before
  // each commit counts them at once (PostgreSQL's ON COMMIT DROP runs commands there too).
  const beforeCommit = found.addFunction((event) => {
    if (event === PRE_COMMIT) found._CommandCounterIncrement();
  }, 'vii');
  found._RegisterXactCallback(beforeCommit, 0);
  return true;
}
