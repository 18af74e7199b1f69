import type { PGlite } from '@electric-sql/pglite';
import { PglitePaths } from '../install/paths.js';
import type { ProxyOptions } from '../proxy/options.js';
import { type ProxyHandle, startProxy } from '../proxy/server.js';
import { InteractiveRuntime } from '../runtime/interactive-runtime.js';
import { openMemoryEngine } from '../runtime/memory-engine.js';
import { prepareTemplate } from '../template/prepare-template.js';

export interface TemplateFlags {
  migrations?: string[];
  seed?: string[];
}

export interface EphemeralDatabase {
  proxy: ProxyHandle;
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
  let engine: PGlite | undefined;
  const runtime = await InteractiveRuntime.start(new PglitePaths(template.runtimeRoot, template.pgdata), {
    env: template.env,
    engineFactory: async () => {
      engine = await openMemoryEngine({
        templatePgdata: template.pgdata,
        runtimeRoot: template.runtimeRoot,
        env: template.env,
        settings: template.settings,
      });
      return engine;
    },
  });
  const proxy = await startProxy({ tcp: true, port: 0, ...listen, runtime, closeRuntime: true }).catch(
    async (error) => {
      await runtime.close();
      throw error;
    },
  );
  return {
    proxy,
    env: proxy.env,
    async close() {
      await proxy.clientsGone(2_000);
      await proxy.close();
      await engine?.close().catch(() => {});
    },
  };
}
