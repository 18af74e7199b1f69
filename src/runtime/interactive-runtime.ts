import { existsSync } from 'node:fs';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { EngineCrashedError, errorMessage, RuntimeClosedError } from '../errors.js';
import type { PglitePaths } from '../install/paths.js';
import { type PokeInput, toFrontendBytes } from '../protocol/frontend.js';
import { blobHooks } from './blob-hooks.js';
import { keepsClientChannels } from './client-channels.js';
import { ClientObjects } from './client-objects.js';
import { keepsClientSettings } from './client-settings.js';
import type { ClientTableHolder } from './client-table.js';
import type { ClusterImage } from './cluster-image.js';
import { type EngineSettings, type EngineSpec, openEngine } from './engine.js';
import { type ClientIdentity, EngineIdentity } from './engine-identity.js';
import type { SharedInterrupts } from './engine-interrupts.js';
import { standardEnv } from './env.js';
import { memoryEngineFiles } from './memory-engine.js';
import { runPgDumpOn } from './pg-dump.js';
import { EngineUnwoundError, execWire, useObjectsOf } from './raw-wire.js';

export interface RuntimeOptions {
  /** Overrides of standardEnv(): PGUSER, PGDATABASE, TZ/PGTZ, PGCLIENTENCODING, PGDATESTYLE. */
  env?: Record<string, string>;
  /** Server settings passed at start (`-c name=value`), over the defaults (shared_buffers=16MB). */
  settings?: EngineSettings;
  /** An alternate engine module; defaults to `<pgroot>/pglite/bin/pglite.wasm`. */
  wasmPath?: string;
  /**
   * How to start the engine. Defaults to opening `paths.pgdata` on disk; the test toolkit passes
   * one that starts an in-memory engine from a template.
   */
  engineFactory?: (spec: EngineSpec) => Promise<PGlite>;
  /** Shared control of the engine's interrupts, for a canceller on another thread. */
  interrupts?: SharedInterrupts;
  /** Where engines find the clients of the proxy that serves them; one of its own by default. */
  clients?: ClientTableHolder;
  /** The oid range the engine counts in (see oid-range.ts). */
  oidRange?: number;
}

/**
 * One engine instance on an on-disk cluster: one PostgreSQL session. Calls run one at a time in
 * the order they were made. If the engine dies inside a call, that call rejects with
 * EngineCrashedError and the next call starts a fresh engine on the same data directory.
 */
export class InteractiveRuntime {
  readonly paths: PglitePaths;
  readonly env: Record<string, string>;
  readonly settings: EngineSettings;
  readonly wasmPath: string;
  private readonly engineFactory: (spec: EngineSpec) => Promise<PGlite>;
  private readonly interrupts: SharedInterrupts | undefined;
  /** Where this runtime's engines find the clients of the proxy that serves them. */
  readonly clients: ClientTableHolder;
  private readonly oidRange: number | undefined;
  private engine: PGlite | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** Calls made through the queue that have not finished yet. */
  private callsInFlight = 0;
  private pending: Uint8Array[] = [];
  private closed = false;

  private constructor(paths: PglitePaths, options: RuntimeOptions) {
    this.paths = paths;
    this.env = { ...standardEnv(), ...options.env };
    this.settings = { ...options.settings };
    this.wasmPath = path.resolve(options.wasmPath ?? path.join(paths.binDir, 'pglite.wasm'));
    this.engineFactory = options.engineFactory ?? openEngine;
    this.interrupts = options.interrupts;
    this.clients = options.clients ?? { table: null };
    this.oidRange = options.oidRange;
  }

  /**
   * The engine comes from an engineFactory (the toolkit's in-memory engines, started from
   * `paths.pgdata` as a template, which they never write) rather than running on `paths.pgdata`.
   */
  get inMemory(): boolean {
    return this.engineFactory !== openEngine;
  }

  /** The files of an in-memory engine's cluster as they are now (see memoryEngineFiles). */
  clusterFiles(): Promise<ClusterImage> {
    return this.exclusive(async (engine) => memoryEngineFiles(engine));
  }

  /** Starts an engine on an installed root (see installAndInitIn) and returns it ready for queries. */
  static async start(paths: PglitePaths, options: RuntimeOptions = {}): Promise<InteractiveRuntime> {
    const runtime = new InteractiveRuntime(paths, options);
    await runtime.exclusive((engine) => Promise.resolve(engine));
    return runtime;
  }

  /**
   * Runs SQL (one simple Query) or raw frontend messages and returns the raw backend bytes.
   * `as`: the client the call runs for (see execWire).
   */
  async execInteractive(input: PokeInput, as?: ClientIdentity): Promise<Uint8Array> {
    const bytes = toFrontendBytes(input);
    return this.exclusive(async (engine) => execWire(engine, bytes, as));
  }

  /** Whether the engine can run calls as a client's login role (see execWire); starts it if needed. */
  async enforcesLoginRoles(): Promise<boolean> {
    // A role is served only where it gets its own rights and its own objects.
    return this.exclusive(
      async (engine) =>
        (EngineIdentity.of(engine)?.enforcesLoginRoles ?? false) &&
        ClientObjects.of(engine) !== undefined &&
        keepsClientChannels(engine) &&
        keepsClientSettings(engine),
    );
  }

  /**
   * Runs raw frontend messages at once when no other call is made or waiting and the engine is
   * up; otherwise returns undefined and does nothing. The proxy's hot path: a round trip through
   * the call queue costs about half as much again as a short query itself.
   */
  execWireNow(bytes: Uint8Array, as?: ClientIdentity): Uint8Array | undefined {
    const engine = this.engine;
    if (this.callsInFlight > 0 || !engine || this.closed) return undefined;
    const exitCode = process.exitCode;
    try {
      return execWire(engine, bytes, as);
    } catch (error) {
      throw this.engineFailure(error, exitCode);
    }
  }

  /** Runs raw frontend messages with `blob` attached to the engine's /dev/blob device. */
  execWithBlob(bytes: Uint8Array, blob: Blob, as?: ClientIdentity): Promise<Uint8Array> {
    return this.exclusive(async (engine) => {
      const hooks = blobHooks(engine);
      await hooks._handleBlob(blob);
      try {
        return execWire(engine, bytes, as);
      } finally {
        await hooks._cleanupBlob();
        await hooks._getWrittenBlob();
      }
    });
  }

  /** Queues input for the next interactiveOne(), REPL style. */
  poke(input: PokeInput): void {
    this.pending.push(toFrontendBytes(input));
  }

  /** Runs everything poked since the last call as one unit and returns its output (empty if none). */
  interactiveOne(): Promise<Uint8Array> {
    const units = this.pending;
    this.pending = [];
    if (units.length === 0) return Promise.resolve(new Uint8Array(0));
    const bytes = Buffer.concat(units);
    return this.exclusive(async (engine) => execWire(engine, bytes));
  }

  /**
   * Runs pg_dump (`argv[0]` is `pg_dump`) on this runtime's session and returns its output, or
   * null when this install has no pg_dump asset (`<pgroot>/pglite/bin/pg_dump.wasm`).
   */
  runPgDump(argv: readonly string[], env: Record<string, string> = {}): Promise<string | null> {
    const wasm = path.join(this.paths.binDir, 'pg_dump.wasm');
    if (!existsSync(wasm)) return Promise.resolve(null);
    return this.exclusive((engine) => runPgDumpOn(engine, wasm, argv, { ...this.env, ...env }), true);
  }

  /** The engine itself, for the PGlite API (query, exec, listen). Do not close it directly. */
  pglite(): Promise<PGlite> {
    return this.exclusive((engine) => Promise.resolve(engine), true);
  }

  /**
   * Runs `fn` with the engine while no other call can use it (calls made meanwhile wait).
   * For work that spans several engine calls and must not interleave with others.
   */
  withEngine<T>(fn: (engine: PGlite) => Promise<T>): Promise<T> {
    return this.exclusive(fn, true);
  }

  /** Closes the engine after the calls already made; the next call starts a fresh one. */
  restartEngine(): Promise<void> {
    return this.exclusive(async (engine) => {
      this.engine = undefined;
      if (!engine.closed) await engine.close();
    });
  }

  /** Closes the engine; the data directory stays as it is. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.catch(() => {});
    const engine = this.engine;
    this.engine = undefined;
    if (engine && !engine.closed) await engine.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // Wire calls skip the engine's async entry: it only adds a filesystem sync, a no-op for the
  // on-disk and in-memory filesystems this package uses, behind a mutex. See raw-wire.ts too.

  /**
   * Runs `fn` alone on a live engine, restarting the engine if a previous call killed it.
   * `asEngine`: `fn` uses the PGlite API, which gets the engine's own session objects, not those
   * of the client whose call came last (see ClientObjects).
   */
  private exclusive<T>(fn: (engine: PGlite) => Promise<T>, asEngine = false): Promise<T> {
    this.callsInFlight++;
    const run = this.queue.then(async () => {
      if (this.closed) throw new RuntimeClosedError();
      this.engine ??= await this.engineFactory({
        paths: this.paths,
        env: this.env,
        settings: this.settings,
        wasmPath: this.wasmPath,
        interrupts: this.interrupts,
        clients: this.clients,
        oidRange: this.oidRange,
      });
      const engine = this.engine;
      const exitCode = process.exitCode;
      try {
        if (asEngine) useObjectsOf(engine, 0);
        return await fn(engine);
      } catch (error) {
        throw this.engineFailure(error, exitCode);
      }
    });
    this.queue = run.catch(() => {});
    void this.queue.then(() => this.callsInFlight--);
    return run;
  }

  /** What a call that threw `error` rejects with; a dead engine is dropped for a fresh one. */
  private engineFailure(error: unknown, exitCode: typeof process.exitCode): unknown {
    if (!isEngineDeath(error)) return error;
    // A dead instance must never be called again (calls into it can spin forever), and its
    // exit() must not become the exit code of the host process.
    this.engine = undefined;
    process.exitCode = exitCode;
    return new EngineCrashedError(
      `The engine stopped while running this call (${errorMessage(error)}); the next call restarts it on ${this.paths.pgdata}.`,
      { cause: error },
    );
  }
}

/** Emscripten reports exit() as a thrown ExitStatus; a trap is a WebAssembly.RuntimeError. */
function isEngineDeath(error: unknown): boolean {
  if (error instanceof WebAssembly.RuntimeError || error instanceof EngineUnwoundError) return true;
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { name?: string }).name === 'ExitStatus' &&
    typeof (error as { status?: unknown }).status === 'number'
  );
}
