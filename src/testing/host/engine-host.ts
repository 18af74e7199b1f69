import os from 'node:os';
import path from 'node:path';
import { EngineHostError } from '../../errors.js';
import { PglitePaths } from '../../install/paths.js';
import type { ClientTimeouts } from '../../proxy/options.js';
import { clusterImage } from '../../runtime/cluster-image.js';
import { compiledModule, fsBundle } from '../../runtime/wasm-modules.js';
import type { Template } from '../../template/prepare-template.js';
import { noticeLongWait } from '../../wait-notice.js';
import { type ControlConnection, serveControl } from './control-channel.js';
import { HostedDatabase } from './hosted-database.js';
import { databasesWithin, memoryBudgetMbOf, memoryQueueWarning } from './memory-budget.js';
import type { HostCalls, LeaseReply, RescueOutcome } from './messages.js';

export interface EngineHostOptions {
  /** The migrated template every database starts from (see `prepareTemplate`). */
  template: Template;
  /** Most databases alive at once; more leases wait. Default: CPU count + 1. */
  maxDatabases?: number;
  /**
   * Memory the databases may take together, in MB: no more are started than fit (~128 MB each),
   * and a test file waits, with a warning, for one to be released. Default: half of the machine's
   * memory (or of the container's limit).
   */
  memoryBudgetMb?: number;
  /** Databases kept started ahead of demand, so a test file's lease is immediate. Default: 1. */
  spare?: number;
  /** The proxies' client timeouts. */
  timeouts?: ClientTimeouts;
}

/** A long-lived process's pool of test databases, leased to test files over a local socket. */
export interface EngineHost {
  /** Where test files lease from: pass to `leaseDatabase()`. */
  readonly address: string;
  close(): Promise<void>;
}

/** How long a cancelled statement may run on before its database is replaced. */
const STATEMENT_STOP_GRACE_MS = 2_000;

interface Waiter {
  resolve(database: HostedDatabase): void;
  reject(error: Error): void;
}

/**
 * Starts the engine host. The engine module is compiled once here and shared with every
 * database's thread; released databases are reset to the template state and reused, so a test
 * file's database is ready in milliseconds instead of the ~1 s a fresh process pays.
 */
export async function startEngineHost(options: EngineHostOptions): Promise<EngineHost> {
  const { template } = options;
  const wanted = Math.max(1, options.maxDatabases ?? os.availableParallelism() + 1);
  const memoryBudgetMb = memoryBudgetMbOf(options.memoryBudgetMb);
  const fitInMemory = databasesWithin(memoryBudgetMb);
  const spare = Math.min(wanted, fitInMemory, Math.max(0, options.spare ?? 1));
  const paths = new PglitePaths(template.runtimeRoot, template.pgdata);
  // Read once here and shared with every database's thread: the compiled engine, the template's
  // files (in shared memory, copied by an engine only where it writes) and the engine's own files.
  const [pgliteWasm, image, bundle] = await Promise.all([
    compiledModule(path.join(paths.binDir, 'pglite.wasm')),
    clusterImage(template.pgdata),
    fsBundle(path.join(paths.shareDir, 'pglite.data')),
  ]);

  const all = new Set<HostedDatabase>();
  const idle: HostedDatabase[] = [];
  const waiters: Waiter[] = [];
  const leases = new Map<number, HostedDatabase>();
  const setAsideDatabases = new Set<HostedDatabase>();
  let starting = 0;
  let nextLease = 1;
  let closed = false;
  let warnedOfMemory = false;

  /** Databases that may be alive now: set-aside ones hold memory too, but one may always run. */
  function limit(): number {
    return Math.min(wanted, Math.max(1, fitInMemory - setAsideDatabases.size));
  }

  function spawn(): void {
    const database = new HostedDatabase({
      template,
      pgliteWasm,
      image,
      bundle,
      timeouts: options.timeouts,
    });
    all.add(database);
    starting++;
    noticeLongWait(
      database.ready,
      () => 'a test database is still starting (its worker thread loads the engine)',
    ).then(
      () => {
        starting--;
        offer(database);
      },
      (error: Error) => {
        starting--;
        all.delete(database);
        // Whoever waits longest learns why; the others keep waiting for the next start.
        waiters.shift()?.reject(error);
        void database.close();
      },
    );
  }

  function offer(database: HostedDatabase): void {
    if (closed) return void retire(database);
    const waiter = waiters.shift();
    if (waiter) waiter.resolve(database);
    else idle.push(database);
  }

  function retire(database: HostedDatabase): void {
    all.delete(database);
    void database.close();
  }

  /** Starts databases until the demand and the spares are covered, within the limit. */
  function topUp(): void {
    while (!closed && all.size < limit() && idle.length + starting < waiters.length + spare) spawn();
    const unserved = waiters.length > idle.length + starting;
    if (unserved && limit() < wanted && all.size >= limit() && !warnedOfMemory) {
      warnedOfMemory = true;
      process.emitWarning(memoryQueueWarning(all.size + setAsideDatabases.size, memoryBudgetMb), {
        type: 'PgliteOxideWarning',
        code: 'PGLITE_OXIDE_MEMORY_BUDGET',
      });
    }
  }

  function acquire(): Promise<HostedDatabase> {
    if (closed) return Promise.reject(new EngineHostError('the engine host is closed'));
    const database = idle.shift();
    const leased = database
      ? Promise.resolve(database)
      : noticeLongWait(
          new Promise<HostedDatabase>((resolve, reject) => waiters.push({ resolve, reject })),
          () =>
            `a test file waits for a database: ${leases.size} leased to files, ${starting} starting, ` +
            `${idle.length} free, ${setAsideDatabases.size} set aside (clients left connected); at most ` +
            `${limit()} at once (maxDatabases ${wanted}, memory budget ${memoryBudgetMb} MB)`,
        );
    topUp();
    return leased;
  }

  async function release(leaseId: number): Promise<void> {
    const database = leases.get(leaseId);
    if (!database) return;
    leases.delete(leaseId);
    if (closed) return retire(database);
    if (await database.recycle()) offer(database);
    else setAside(database);
    topUp();
  }

  /**
   * A database whose clients did not leave is not reused, and not closed yet either: closing it
   * would send its clients an error in the middle of the test process that leaked them (an
   * unhandled 'error' of a pg client ends that process). It closes with the host, at the end of
   * the run, and a fresh database takes its place meanwhile.
   */
  function setAside(database: HostedDatabase): void {
    all.delete(database);
    setAsideDatabases.add(database);
  }

  /**
   * A test file's control waits behind a statement its test left running: asks the statement to
   * stop, and replaces the database when it does not (it computes without calling out).
   */
  async function rescue(leaseId: number): Promise<RescueOutcome> {
    const database = leases.get(leaseId);
    if (database?.replacing) {
      await database.replacing;
      return 'replaced';
    }
    const running = database?.cancelRunning() ?? null;
    if (!database || running === null) return 'idle';
    await new Promise((resolve) => setTimeout(resolve, STATEMENT_STOP_GRACE_MS));
    if (!database.stillRunning(running)) return 'cancelled';
    await database.replace();
    return 'replaced';
  }

  async function lease(connection: ControlConnection): Promise<LeaseReply> {
    const database = await acquire();
    const leaseId = nextLease++;
    leases.set(leaseId, database);
    // A test file that dies without releasing (killed worker, crash) gives its database back too.
    connection.onClose(() => void release(leaseId));
    return { leaseId, info: await database.ready };
  }

  const control = await serveControl<HostCalls>({
    lease: (_args, connection) => lease(connection),
    release: ({ leaseId }) => release(leaseId),
    cancel: ({ leaseId }) => rescue(leaseId),
  });
  // Not awaited: the spares start while the runner starts its workers and loads the first test
  // files (bench:suite measured ~0.2 s less of a run's wall time than waiting for them first).
  topUp();

  return {
    address: control.address,
    async close() {
      if (closed) return;
      closed = true;
      for (const waiter of waiters.splice(0)) waiter.reject(new EngineHostError('the engine host is closed'));
      await control.close();
      await Promise.all([...all, ...setAsideDatabases].map((database) => database.close()));
      all.clear();
      setAsideDatabases.clear();
    },
  };
}
