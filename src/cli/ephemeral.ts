import type { ClientTimeouts, ProxyOptions } from '../proxy/options.js';
import { startThreadedProxy, type ThreadedProxyHandle } from '../proxy/server.js';
import { ThreadedEngine } from '../runtime/threaded-engine.js';
import { prepareTemplate } from '../template/prepare-template.js';

export interface TemplateFlags {
  migrations?: string[];
  seed?: string[];
}

/** The client limits serve and run take (see ProxyOptions). */
export interface TimeoutFlags {
  queueTimeout?: number;
  idleInTransactionTimeout?: number;
}

export function clientTimeouts(flags: TimeoutFlags): ClientTimeouts {
  return { queueTimeoutMs: flags.queueTimeout, idleInTransactionTimeoutMs: flags.idleInTransactionTimeout };
}

export interface EphemeralDatabase {
  proxy: ThreadedProxyHandle;
  /** DATABASE_URL and the libpq PG* variables. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/**
 * A throwaway database in memory, started from the cached cluster or the migrated template: no
 * files to copy, nothing left on disk. Unlike a test database it is never reset, so it takes no
 * snapshot.
 */
export async function startEphemeralDatabase(
  flags: TemplateFlags,
  listen: Omit<ProxyOptions, 'runtime' | 'paths'> = {},
): Promise<EphemeralDatabase> {
  const template = await prepareTemplate({ migrations: flags.migrations, seed: flags.seed });
  // The engine runs in a thread of its own: a long statement cannot hold up the server.
  const engine = await ThreadedEngine.start({
    kind: 'memory',
    runtimeRoot: template.runtimeRoot,
    pgdata: template.pgdata,
    env: template.env,
    settings: template.settings,
  });
  const proxy = await startThreadedProxy(engine, { tcp: true, port: 0, ...listen }).catch(async (error) => {
    await engine.close();
    throw error;
  });
  return {
    proxy,
    env: proxy.env,
    async close() {
      await proxy.clientsGone(2_000);
      await proxy.close();
    },
  };
}
