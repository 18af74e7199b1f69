import { cpSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PglitePaths } from '../install/paths.js';
import { type ProxyHandle, startProxy } from '../proxy/server.js';
import { openEngine } from '../runtime/engine.js';
import { InteractiveRuntime } from '../runtime/interactive-runtime.js';
import type { Template } from '../template/prepare-template.js';

/** One test file's database: its own engine on a copy of the template, served on a random port. */
export interface SuiteDatabase {
  connectionString: string;
  /** DATABASE_URL and the libpq PG* variables pointing at this database. */
  env: Record<string, string>;
  runtime: InteractiveRuntime;
  proxy: ProxyHandle;
  /** Where this suite's data directory lives (removed by close()). */
  pgdata: string;
  /** Puts the database back exactly as the template left it (sequences included). */
  reset(): Promise<void>;
  close(): Promise<void>;
}

export async function startSuiteDatabase(template: Template): Promise<SuiteDatabase> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'pglite-oxide-suite-'));
  const paths = new PglitePaths(template.runtimeRoot, path.join(root, 'pgdata'));
  const restoreTemplate = () => {
    cpSync(template.pgdata, paths.pgdata, { recursive: true });
  };
  restoreTemplate();
  let resetPending = false;
  const runtime = await InteractiveRuntime.start(paths, {
    env: template.env,
    settings: template.settings,
    // A reset replaces the data directory between engines, where no call can observe it.
    engineFactory: async (spec) => {
      if (resetPending) {
        resetPending = false;
        await fs.rm(paths.pgdata, { recursive: true, force: true });
        restoreTemplate();
      }
      return openEngine(spec);
    },
  });
  let proxy: ProxyHandle;
  try {
    proxy = await startProxy({ runtime, tcp: true, port: 0 });
  } catch (error) {
    await runtime.close();
    await fs.rm(root, { recursive: true, force: true });
    throw error;
  }
  const url = new URL(proxy.connectionString);
  return {
    connectionString: proxy.connectionString,
    env: {
      DATABASE_URL: proxy.connectionString,
      PGHOST: url.hostname,
      PGPORT: url.port,
      PGUSER: proxy.user,
      PGDATABASE: proxy.database,
    },
    runtime,
    proxy,
    pgdata: paths.pgdata,
    async reset() {
      resetPending = true;
      await runtime.restartEngine();
      // Open the engine now, so the reset's cost is paid here and not by the next query.
      await runtime.withEngine(async () => {});
    },
    async close() {
      // Clients that already said goodbye may still be leaving; let them, rather than sending
      // them a shutdown error they would report as unhandled.
      await clientsGone(proxy, 2_000);
      await proxy.close();
      await runtime.close();
      await fs.rm(root, { recursive: true, force: true });
    },
  };
}

async function clientsGone(proxy: ProxyHandle, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (proxy.clientCount > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
