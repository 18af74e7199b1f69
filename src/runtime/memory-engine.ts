import { existsSync } from 'node:fs';
import path from 'node:path';
import type { MessagePort } from 'node:worker_threads';
import { MemoryFS, PGlite } from '@electric-sql/pglite';
import { EngineStartError, errorMessage, RuntimeClosedError } from '../errors.js';
import { PglitePaths } from '../install/paths.js';
import type { ClientTableHolder } from './client-table.js';
import { type ClusterImage, clusterImage } from './cluster-image.js';
import { copyOnWrite } from './copy-on-write-files.js';
import { type EngineSettings, startParams } from './engine.js';
import { instrumentEngine } from './engine-instruments.js';
import { EngineInterrupts, type SharedInterrupts } from './engine-interrupts.js';
import {
  dropSnapshot,
  type EngineSnapshot,
  type RestoreStats,
  restoreSnapshot,
  SnapshotRestoreError,
  takeSnapshot,
} from './engine-snapshot.js';
import type { FsNode, Memfs } from './engine-snapshot-fs.js';
import { standardEnv } from './env.js';
import { reportFileChanges } from './file-mirror.js';
import { rememberWireCallbacks } from './raw-wire.js';
import { compiledModule, fsBundle } from './wasm-modules.js';

export interface MemoryEngineOptions {
  /** A cluster to start from (e.g. `prepareTemplate()`'s `pgdata`). It is read, never written. */
  templatePgdata: string;
  /** The installed runtime the engine files come from (e.g. `prepareTemplate()`'s `runtimeRoot`). */
  runtimeRoot: string;
  /** PGUSER, PGDATABASE (default postgres), TZ/PGTZ, PGCLIENTENCODING, PGDATESTYLE. */
  env?: Record<string, string>;
  /** Server settings (`-c name=value`) over the defaults (shared_buffers=16MB). */
  settings?: EngineSettings;
  /** Shared control of the engine's interrupts, for a canceller on another thread. */
  interrupts?: SharedInterrupts;
  /** Where the engine finds the clients of the proxy that serves it (see ClientTableHolder). */
  clients?: ClientTableHolder;
  /**
   * Keep the data directory's files in shared memory and report them here, so that they outlive
   * the engine's thread (see file-mirror.ts).
   */
  mirror?: MessagePort;
}

/** Where the engine expects its data directory inside its own filesystem. */
const GUEST_PGDATA = '/pglite/data';

/** The parts of Emscripten's FS and MEMFS this module fills the data directory with. */
interface GuestFS {
  mkdirTree(path: string, mode?: number): void;
  readdir(path: string): string[];
  stat(path: string): { mode: number };
  readFile(path: string): Uint8Array;
  lookupPath(path: string): { node: FsNode };
  getPath(node: FsNode): string;
  isDir(mode: number): boolean;
  isFile(mode: number): boolean;
}
interface GuestMemfs extends Memfs {
  createNode(parent: FsNode, name: string, mode: number, dev: number): FsNode;
}

/** The files of an in-memory engine's cluster as they are now, copied out of the engine. */
export function memoryEngineFiles(engine: PGlite): ClusterImage {
  const fs = (engine as unknown as { mod: { FS: GuestFS } }).mod.FS;
  const image: ClusterImage = { dirs: [], bytes: new Uint8Array(0), files: [] };
  const walk = (relative: string) => {
    for (const name of fs.readdir(`${GUEST_PGDATA}/${relative}`)) {
      if (name === '.' || name === '..') continue;
      const child = relative ? `${relative}/${name}` : name;
      const full = `${GUEST_PGDATA}/${child}`;
      const { mode } = fs.stat(full);
      if (fs.isDir(mode)) {
        image.dirs.push(child);
        walk(child);
      } else if (fs.isFile(mode)) {
        const bytes = fs.readFile(full);
        image.files.push({ path: child, offset: 0, length: bytes.length, bytes });
      }
    }
  };
  walk('');
  return image;
}

/** Modes as FS.mkdir(path, 0o700) and FS.writeFile(path) give them. */
const DIR_MODE = 0o40700;
const FILE_MODE = 0o100666;

/**
 * Creates the image's directories and files under `root` as MEMFS nodes, directly: going through
 * paths (FS.mkdir, FS.writeFile) resolves every component of every path, ~1000 times per engine.
 * Each file is a view on the image every engine of the process shares, copied on its first write.
 */
function fillFromImage(memfs: GuestMemfs, root: FsNode, image: ClusterImage): void {
  const dirs = new Map<string, FsNode>([['', root]]);
  const parentOf = (relative: string): [FsNode, string] => {
    const slash = relative.lastIndexOf('/');
    const parent = dirs.get(slash < 0 ? '' : relative.slice(0, slash));
    if (!parent) throw new EngineStartError(`the cluster image lists ${relative} before its directory`);
    return [parent, relative.slice(slash + 1)];
  };
  for (const dir of image.dirs) dirs.set(dir, memfs.createNode(...parentOf(dir), DIR_MODE, 0));
  for (const file of image.files) {
    const node = memfs.createNode(...parentOf(file.path), FILE_MODE, 0);
    node.contents = file.bytes ?? image.bytes.subarray(file.offset, file.offset + file.length);
    node.usedBytes = file.length;
  }
}

/** PGlite's in-memory filesystem, filled with a cluster before Postgres starts. */
class ClusterMemoryFS extends MemoryFS {
  constructor(
    private readonly image: ClusterImage,
    private readonly interrupts: EngineInterrupts,
    private readonly mirror: MessagePort | undefined,
  ) {
    super();
  }

  override async init(pg: PGlite, emscriptenOptions: Parameters<MemoryFS['init']>[1]) {
    const { emscriptenOpts } = await super.init(pg, emscriptenOptions);
    const image = this.image;
    const fillDataDir = (mod: { FS: GuestFS }) => {
      const memfs = (mod as unknown as { MEMFS: GuestMemfs }).MEMFS;
      mod.FS.mkdirTree(GUEST_PGDATA, 0o700);
      copyOnWrite(memfs);
      fillFromImage(memfs, mod.FS.lookupPath(GUEST_PGDATA).node, image);
      if (this.mirror) reportFileChanges(mod.FS, memfs, GUEST_PGDATA, this.mirror);
    };
    const preRun = [...(emscriptenOpts.preRun ?? []), fillDataDir, rememberWireCallbacks];
    return { emscriptenOpts: this.interrupts.wrapOptions({ ...emscriptenOpts, preRun }) };
  }
}

/**
 * Starts an engine whose data directory lives in memory, filled from a template cluster. Nothing
 * it does reaches the disk, so any number of engines may start from one template. The template
 * is read from disk once per process.
 */
export async function openMemoryEngine(options: MemoryEngineOptions): Promise<PGlite> {
  const templatePgdata = path.resolve(options.templatePgdata);
  if (!existsSync(path.join(templatePgdata, 'PG_VERSION'))) {
    throw new EngineStartError(`There is no cluster in ${templatePgdata} to start an in-memory engine from.`);
  }
  const paths = new PglitePaths(options.runtimeRoot, templatePgdata);
  // The same defaults as an on-disk runtime: user postgres, database postgres, UTF8, UTC.
  const env: Record<string, string> = { ...standardEnv(), ...options.env };
  const [image, pgliteWasmModule, bundle] = await Promise.all([
    clusterImage(templatePgdata),
    compiledModule(path.join(paths.binDir, 'pglite.wasm')),
    fsBundle(path.join(paths.shareDir, 'pglite.data')),
  ]);
  const exitCode = process.exitCode;
  let engine: PGlite;
  try {
    engine = await PGlite.create({
      fs: new ClusterMemoryFS(image, new EngineInterrupts(options.interrupts), options.mirror),
      pgliteWasmModule,
      fsBundle: bundle,
      username: env.PGUSER,
      database: env.PGDATABASE,
      startParams: startParams(env, options.settings),
    });
  } catch (error) {
    throw new EngineStartError(
      `The in-memory engine could not start from ${templatePgdata}: ${(error as Error)?.message ?? error}`,
      { cause: error },
    );
  } finally {
    // A failed start calls exit() inside the engine, which must not become the host's exit code.
    process.exitCode = exitCode;
  }
  await instrumentEngine(engine, options.clients);
  return engine;
}

/** How a reset was made: restoring the snapshot (~10 ms) or starting a new engine (~0.3 s). */
export type ResetPath = 'snapshot' | 'reopen';

export interface ResetReport {
  path: ResetPath;
  ms: number;
  /** Why the snapshot was not used, when a snapshot reset was wanted but a reopen was made. */
  fallbackReason?: string;
  /** For a snapshot reset: what was restored and where the time went. */
  restore?: RestoreStats;
}

export interface ResettableEngineOptions extends MemoryEngineOptions {
  /** 'snapshot' (the default): restore a snapshot, reopening only when that fails. 'reopen': always reopen. */
  reset?: ResetPath;
  /**
   * Shared libraries to load (SQL `LOAD`) before the snapshot is taken, such as text-search
   * dictionaries. plpgsql is always loaded. A library first loaded after the snapshot makes the
   * next reset a reopen, after which it is loaded before the snapshot too.
   */
  preloadLibraries?: readonly string[];
}

/**
 * An in-memory engine that can be put back to its template state, exactly, between tests. The
 * fast path restores a snapshot taken right after start; when that cannot be done or verified,
 * the engine is replaced by a new one started from the template, which is exact too.
 */
export class ResettableEngine {
  private engine: PGlite;
  private current: EngineSnapshot | undefined;
  private unavailable: string | undefined;
  private readonly libraries: Set<string>;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  lastReset: ResetReport | undefined;

  private constructor(
    private readonly options: ResettableEngineOptions,
    engine: PGlite,
  ) {
    this.engine = engine;
    this.libraries = new Set(options.preloadLibraries);
  }

  static async open(options: ResettableEngineOptions): Promise<ResettableEngine> {
    const resettable = new ResettableEngine(options, await openMemoryEngine(options));
    await resettable.prepareSnapshot();
    return resettable;
  }

  /** The engine. It is a different instance after a reset that reopened: read it after each reset. */
  get pglite(): PGlite {
    return this.engine;
  }

  /** The snapshot resets restore, if there is one. */
  get snapshot(): EngineSnapshot | undefined {
    return this.current;
  }

  /** Why resets cannot restore a snapshot at the moment, or undefined when they can. */
  get snapshotUnavailableReason(): string | undefined {
    return this.unavailable;
  }

  /** Puts the engine back to the template state. `path` forces one way of doing it. */
  reset(options: { path?: ResetPath } = {}): Promise<ResetReport> {
    return this.exclusive(async () => {
      const started = performance.now();
      const wanted = options.path ?? this.options.reset ?? 'snapshot';
      let fallbackReason: string | undefined;
      if (wanted === 'snapshot') {
        const snapshot = this.current;
        if (snapshot) {
          try {
            const restore = await restoreSnapshot(this.engine, snapshot);
            return this.finish({ path: 'snapshot', ms: performance.now() - started, restore });
          } catch (error) {
            fallbackReason = errorMessage(error);
            if (error instanceof SnapshotRestoreError) {
              for (const library of error.libraries) this.libraries.add(library);
            }
            await this.discardEngine(error instanceof SnapshotRestoreError && error.engineUntouched);
          }
        } else {
          fallbackReason = this.unavailable;
          await this.discardEngine(true);
        }
      } else {
        await this.discardEngine(true);
      }
      this.engine = await openMemoryEngine(this.options);
      await this.prepareSnapshot();
      return this.finish({ path: 'reopen', ms: performance.now() - started, fallbackReason });
    });
  }

  /** Closes the engine. Idempotent. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return this.queue.then(() => this.discardEngine(true));
  }

  private finish(report: ResetReport): ResetReport {
    this.lastReset = report;
    return report;
  }

  /** Brings the fresh engine to the point every reset returns to, and snapshots it there. */
  private async prepareSnapshot(): Promise<void> {
    this.current = undefined;
    if ((this.options.reset ?? 'snapshot') === 'reopen') {
      this.unavailable = 'resets were asked to reopen';
      return;
    }
    // Libraries load lazily and the loader's state cannot be rolled back: load them first.
    await this.engine.exec('DO $$ BEGIN END $$').catch(() => {});
    for (const library of this.libraries) {
      await this.engine.exec(`LOAD '${library.replaceAll("'", "''")}'`).catch(() => {});
    }
    try {
      this.current = await takeSnapshot(this.engine);
      this.unavailable = undefined;
    } catch (error) {
      this.unavailable = errorMessage(error);
    }
  }

  /**
   * Lets go of the current engine. One a failed restore may have left half-written is not
   * closed: closing runs the engine, and it could spin or crash. Its close() becomes a no-op so
   * that whoever still holds it cannot run it either.
   */
  private async discardEngine(usable: boolean): Promise<void> {
    const engine = this.engine;
    dropSnapshot(engine);
    this.current = undefined;
    if (usable && !engine.closed) await engine.close().catch(() => {});
    if (!usable) engine.close = () => Promise.resolve();
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.closed) throw new RuntimeClosedError();
      return fn();
    });
    this.queue = run.catch(() => {});
    return run;
  }
}

/** Opens an in-memory engine from a template, ready for exact resets (see ResettableEngine). */
export function createResettableEngine(options: ResettableEngineOptions): Promise<ResettableEngine> {
  return ResettableEngine.open(options);
}
