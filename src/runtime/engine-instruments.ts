import type { PGlite } from '@electric-sql/pglite';
import { installActivityView } from './activity-view.js';
import { installAdvisoryLocks } from './advisory-locks.js';
import { installBackendSignals } from './backend-signals.js';
import { installClientChannels } from './client-channels.js';
import { ClientObjects } from './client-objects.js';
import type { ClientTableHolder } from './client-table.js';
import { guardEngine } from './engine-guards.js';
import { EngineIdentity } from './engine-identity.js';
import { EngineInterrupts } from './engine-interrupts.js';
import { loadExtensionsOnDemand } from './extension-bundles.js';
import { installLocksView } from './locks-view.js';

/** The initdb user's oid: an engine's own login when it cannot be read. */
const BOOTSTRAP_SUPERUSER = 10;

/**
 * Everything this package installs into an engine it starts, before anything else runs on it (so
 * a snapshot of the engine keeps it): the guards, the session's identity per client, signals to
 * clients by pid (through `clients`, which a proxy fills once it serves the engine), each client's
 * own prepared statements, portals, temporary schema, advisory locks and LISTEN channels,
 * pg_stat_activity with a row a client, pg_locks with each lock under its holder, and extensions
 * loaded when first asked for.
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
  await installClientChannels(engine, clients, callerPid, functionTable);
  loadExtensionsOnDemand(module);
}
