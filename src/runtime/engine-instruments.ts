import type { PGlite } from '@electric-sql/pglite';
import { installActivityView } from './activity-view.js';
import { installAdvisoryLocks } from './advisory-locks.js';
import { installBackendSignals } from './backend-signals.js';
import { CHANNEL_PROBES, installClientChannels } from './client-channels.js';
import { ClientObjects } from './client-objects.js';
import { installClientSettings, SETTING_PROBES } from './client-settings.js';
import type { ClientTableHolder } from './client-table.js';
import { guardEngine } from './engine-guards.js';
import { EngineIdentity } from './engine-identity.js';
import { EngineInterrupts } from './engine-interrupts.js';
import { loadExtensionsOnDemand } from './extension-bundles.js';
import { installLocksView } from './locks-view.js';
import { installRoleChanges } from './role-changes.js';
import { UtilityHook, type UtilityModule } from './utility-hook.js';

/** The initdb user's oid: an engine's own login when it cannot be read. */
const BOOTSTRAP_SUPERUSER = 10;

/**
 * Everything this package installs into an engine it starts, before anything else runs on it (so
 * a snapshot of the engine keeps it): the guards, the session's identity per client, signals to
 * clients by pid (through `clients`, which a proxy fills once it serves the engine), each client's
 * own prepared statements, portals, temporary schema, advisory locks, LISTEN channels and settings,
 * pg_stat_activity with a row a client, pg_locks with each lock under its holder, a count of role
 * changes for the proxy's copy of the roles, and extensions loaded when first asked for.
 */
export async function instrumentEngine(
  engine: PGlite,
  clients: ClientTableHolder = { table: null },
): Promise<void> {
  const module = (engine as unknown as { mod: object }).mod;
  guardEngine(engine);
  const identity = await EngineIdentity.install(engine);
  const engineOid = identity?.engineOid ?? BOOTSTRAP_SUPERUSER;
  await ClientObjects.install(engine, clients, engineOid);
  installBackendSignals(module, clients, engineOid);
  const callerPid = () => identity?.clientPid ?? 0;
  const locks = installAdvisoryLocks(module, clients, callerPid);
  const functionTable = EngineInterrupts.of(module)?.functionTable ?? null;
  installActivityView(module, clients, callerPid, functionTable);
  installLocksView(module, clients, callerPid, locks, functionTable);
  const utility = await installUtilityHook(engine, module, functionTable);
  const probed = utility?.probed ?? [];
  installClientChannels(
    engine,
    clients,
    callerPid,
    functionTable,
    utility,
    probed.slice(0, CHANNEL_PROBES.length),
  );
  installClientSettings(
    engine,
    clients,
    callerPid,
    functionTable,
    utility,
    probed.slice(CHANNEL_PROBES.length),
  );
  installRoleChanges(module, clients);
  loadExtensionsOnDemand(module);
}

/** The one ProcessUtility hook the per-client modules share; null when the engine lacks it. */
async function installUtilityHook(
  engine: PGlite,
  module: object,
  functionTable: WebAssembly.Table | null,
): Promise<UtilityHook | null> {
  const candidate = module as Partial<UtilityModule>;
  if (!functionTable || typeof candidate._ProcessUtility_hook !== 'number') return null;
  if (typeof candidate._standard_ProcessUtility !== 'function' || typeof candidate.addFunction !== 'function')
    return null;
  return UtilityHook.install(engine, candidate as UtilityModule, functionTable, [
    ...CHANNEL_PROBES,
    ...SETTING_PROBES,
  ]);
}
