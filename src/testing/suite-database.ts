import type { PGlite } from '@electric-sql/pglite';
import { PglitePaths } from '../install/paths.js';
import type { ClientTimeouts } from '../proxy/options.js';
import { type ProxyHandle, startProxy } from '../proxy/server.js';
import type { ClientTableHolder } from '../runtime/client-table.js';
import type { SharedInterrupts } from '../runtime/engine-interrupts.js';
import { InteractiveRuntime } from '../runtime/interactive-runtime.js';
import { createResettableEngine, type ResetReport } from '../runtime/memory-engine.js';
import type { Template } from '../template/prepare-template.js';

/** What every reset of a suite database goes back to: the engine as it started from its template. */
const TEMPLATE_STATE = Symbol('the template state');

/** One test file's database: its own in-memory engine started from the template, on a random port. */
export interface SuiteDatabase {
  connectionString: string;
  /** DATABASE_URL and the libpq PG* variables pointing at this database. */
  env: Record<string, string>;
  runtime: InteractiveRuntime;
  proxy: ProxyHandle;
  /** Puts the database back exactly as the template left it (sequences included), and says how. */
  reset(): Promise<ResetReport>;
  /** The engine, for what only its PGlite API can do (such as dumping the data directory). */
  readonly pglite: PGlite;
  /** Ends the clients (told `reason` when given, see ProxyHandle.close) and the engine. */
  close(reason?: string): Promise<void>;
}

export interface SuiteDatabaseOptions {
  /**
   * Serve clients in test-transaction mode: `proxy.beginTest()` / `proxy.endTest()` wrap each
   * test in an outer transaction, and clients' own transactions become savepoints inside it.
   */
  testTransactions?: boolean;
  /** Lets another thread cancel the statement the engine runs (the engine host's main thread). */
  interrupts?: SharedInterrupts;
  /** See ProxyOptions. */
  timeouts?: ClientTimeouts;
  /** The TCP port to serve on; a free one by default. */
  port?: number;
}

export async function startSuiteDatabase(
  template: Template,
  options: SuiteDatabaseOptions = {},
): Promise<SuiteDatabase> {
  // The engine's data lives in memory, filled from the template: nothing to copy on disk, and a
  // reset restores a snapshot of the started engine (exact, ~10 ms) instead of restarting it.
  // The proxy's clients, for the engine's pg_cancel_backend and pg_terminate_backend by pid.
  const clients: ClientTableHolder = { table: null };
  const engine = await createResettableEngine({
    clients,
    templatePgdata: template.pgdata,
    runtimeRoot: template.runtimeRoot,
    env: template.env,
    settings: template.settings,
    interrupts: options.interrupts,
  });
  const paths = new PglitePaths(template.runtimeRoot, template.pgdata);
  const runtime = await InteractiveRuntime.start(paths, {
    env: template.env,
    settings: template.settings,
    engineFactory: async () => engine.pglite,
    clients,
  });
  let proxy: ProxyHandle;
  try {
    proxy = await startProxy({
      runtime,
      tcp: true,
      port: options.port ?? 0,
      testTransactions: options.testTransactions,
      ...options.timeouts,
    });
  } catch (error) {
    await runtime.close();
    await engine.close();
    throw error;
  }
  return {
    connectionString: proxy.connectionString,
    env: proxy.env,
    runtime,
    proxy,
    get pglite() {
      return engine.pglite;
    },
    async reset() {
      return proxy.resetEngine(async () => {
        const report = await runtime.withEngine(() => engine.reset());
        // A reset that had to start a new engine: the runtime picks it up from the factory.
        if (report.path === 'reopen') await runtime.restartEngine();
        return report;
      }, TEMPLATE_STATE);
    },
    async close(reason) {
      // Clients that already said goodbye may still be leaving; let them, rather than sending
      // them a shutdown error they would report as unhandled.
      await proxy.clientsGone(2_000);
      await proxy.close(reason);
      await runtime.close();
      await engine.close();
    },
  };
}
