/**
 * Snapshot and exact restore of a running in-memory engine, for per-test resets in ~10 ms.
 *
 * This is the one place that relies on private Emscripten/PGlite internals (the module's linear
 * memory and stack pointer, MEMFS, the open file streams). They are looked up and checked on
 * every snapshot, every restore is verified against a fingerprint taken with the snapshot, and
 * any doubt is a SnapshotRestoreError, so callers can fall back to an exact slow reset
 * (createResettableEngine does). tests/engine-snapshot.test.ts fails when an upgrade moves them.
 */
import type { PGlite } from '@electric-sql/pglite';
import { EngineInternalsChangedError, PgliteOxideError } from '../errors.js';
import { type EmscriptenFS, type Memfs, MemfsChangeLog } from './engine-snapshot-fs.js';
import {
  captureMemory,
  type HeapAllocator,
  heapEnd,
  locateHeapEnd,
  type MemoryImage,
  restoreMemory,
} from './engine-snapshot-memory.js';

/** Why a snapshot could not be taken or restored. */
export type SnapshotFailure =
  /** The engine is in a transaction or closed: a snapshot is taken between calls, outside one. */
  | 'not-idle'
  /** The snapshot belongs to another engine, or a newer snapshot of this engine replaced it. */
  | 'stale-snapshot'
  /**
   * A shared library (an extension, a procedural language, a text-search dictionary) was loaded
   * after the snapshot. The loader keeps state in JavaScript that a restore cannot roll back.
   */
  | 'library-loaded'
  /** After the restore, the engine did not match the fingerprint taken with the snapshot. */
  | 'verification-failed';

export class SnapshotRestoreError extends PgliteOxideError {
  constructor(
    readonly reason: SnapshotFailure,
    /** True when the engine was left as it was, so it can still be used (or closed normally). */
    readonly engineUntouched: boolean,
    message: string,
    /** For 'library-loaded': the libraries (guest paths) loaded since the snapshot. */
    readonly libraries: readonly string[] = [],
  ) {
    super('SNAPSHOT_RESTORE_FAILED', message);
  }
}

/** The state of an engine at an idle point, to come back to. Valid for that engine only. */
export interface EngineSnapshot {
  readonly memory: MemoryImage;
  /**
   * Where the engine keeps the end of its heap, when it could be found: the snapshot then covers
   * memory up to there instead of all of it (~40 MB instead of 128 MB).
   */
  readonly heapEndAddress: number | undefined;
  readonly stackPointer: number;
  /** The raw answer to FINGERPRINT_SQL when the snapshot was taken. */
  readonly fingerprint: Uint8Array;
  /** Facts about the JavaScript side (streams, working directory, stack, control file). */
  readonly facts: string;
}

export interface RestoreStats {
  /** Bytes of linear memory compared with the snapshot. */
  memoryCompared: number;
  /** Bytes of linear memory copied back. */
  memoryBytes: number;
  /** Files and directories put back. */
  fsNodes: number;
  ms: number;
  /** Where the time went: waiting for the engine to be idle, memory, filesystem, verification. */
  phases: { wait: number; memory: number; fs: number; verify: number };
}

/**
 * Cheap, and changes when anything a test can do changes: the WAL position (every write), the
 * transaction snapshot (every transaction), the relations and their storage (DDL, TRUNCATE,
 * VACUUM FULL), the session's settings and role. Runs in ~0.3 ms.
 */
const FINGERPRINT_SQL = `SELECT pg_current_wal_insert_lsn()::text, txid_current_snapshot()::text,
  (SELECT count(*) || ':' || sum(relfilenode::int8) || ':' || max(oid::int8) FROM pg_class),
  current_user, current_setting('search_path'), current_setting('TimeZone')`;

const PGDATA_CONTROL_FILE = '/pglite/data/global/pg_control';

interface Internals {
  memory: () => ArrayBuffer;
  allocator: HeapAllocator;
  stackPointer: WebAssembly.Global;
  fs: EmscriptenFS & { readFile(path: string): Uint8Array };
  memfs: Memfs;
}

interface Tracked {
  snapshot: EngineSnapshot;
  log: MemfsChangeLog;
}

const tracked = new WeakMap<PGlite, Tracked>();
const heapEndAddresses = new WeakMap<PGlite, number | undefined>();

/**
 * Takes a snapshot of an idle engine (no transaction open, no call running). Replaces the
 * engine's previous snapshot. Throws EngineInternalsChangedError if this engine build does not
 * have what a snapshot needs.
 */
export function takeSnapshot(pg: PGlite): Promise<EngineSnapshot> {
  const internals = internalsOf(pg);
  return pg._runExclusiveQuery(async () => {
    if (pg.closed || pg.isInTransaction()) {
      throw new SnapshotRestoreError(
        'not-idle',
        true,
        'A snapshot is taken between calls, outside a transaction.',
      );
    }
    const stackPointer = internals.stackPointer.value as number;
    if (!heapEndAddresses.has(pg)) {
      heapEndAddresses.set(pg, locateHeapEnd(internals.memory, internals.allocator, stackPointer));
    }
    const heapEndAddress = heapEndAddresses.get(pg);
    const fingerprint = await pg.execProtocolRaw(simpleQuery(FINGERPRINT_SQL), { syncToFs: false });
    tracked.get(pg)?.log.detach();
    const log = new MemfsChangeLog(internals.fs, internals.memfs);
    const memory = internals.memory();
    const snapshot: EngineSnapshot = {
      memory: captureMemory(memory, memoryInUse(memory, heapEndAddress, stackPointer)),
      heapEndAddress,
      stackPointer,
      fingerprint,
      facts: factsOf(internals, log),
    };
    tracked.set(pg, { snapshot, log });
    return snapshot;
  });
}

/**
 * Puts the engine back exactly as it was when the snapshot was taken: data, sequences, catalog,
 * session state, open transactions gone. Throws SnapshotRestoreError when that cannot be done or
 * verified; `engineUntouched` then says whether the engine may still be used.
 */
export function restoreSnapshot(pg: PGlite, snapshot: EngineSnapshot): Promise<RestoreStats> {
  const internals = internalsOf(pg);
  return pg._runExclusiveQuery(async () => {
    const started = performance.now();
    const current = tracked.get(pg);
    if (current?.snapshot !== snapshot) {
      throw new SnapshotRestoreError(
        'stale-snapshot',
        true,
        'This is not the current snapshot of this engine.',
      );
    }
    if (pg.closed) throw new SnapshotRestoreError('not-idle', true, 'The engine is closed.');
    const { log } = current;
    if (log.librariesOpened.size > 0) {
      throw new SnapshotRestoreError(
        'library-loaded',
        true,
        `Shared libraries were loaded since the snapshot (${[...log.librariesOpened].join(', ')}); ` +
          'load them before taking it.',
        [...log.librariesOpened],
      );
    }
    const fsNodes = log.changedNodes;
    const memory = internals.memory();
    const memoryCompared = Math.max(
      snapshot.memory.byteLength,
      memoryInUse(memory, snapshot.heapEndAddress, snapshot.stackPointer),
    );
    const queued = performance.now();
    const memoryBytes = restoreMemory(memory, snapshot.memory, memoryCompared);
    const memoryDone = performance.now();
    internals.stackPointer.value = snapshot.stackPointer;
    log.restore();
    const fsDone = performance.now();

    const facts = factsOf(internals, log);
    if (facts !== snapshot.facts) {
      throw verificationFailed(`engine facts ${facts} instead of ${snapshot.facts}`);
    }
    const answer = await pg.execProtocolRaw(simpleQuery(FINGERPRINT_SQL), { syncToFs: false });
    if (!sameBytes(answer, snapshot.fingerprint)) {
      throw verificationFailed('the fingerprint query answered differently');
    }
    const done = performance.now();
    return {
      memoryCompared,
      memoryBytes,
      fsNodes,
      ms: done - started,
      phases: {
        wait: queued - started,
        memory: memoryDone - queued,
        fs: fsDone - memoryDone,
        verify: done - fsDone,
      },
    };
  });
}

/** Stops tracking changes for snapshots of this engine (its last snapshot can no longer be restored). */
export function dropSnapshot(pg: PGlite): void {
  tracked.get(pg)?.log.detach();
  tracked.delete(pg);
}

/** Memory that may hold anything: up to the heap's end, or all of it when that is unknown. */
function memoryInUse(memory: ArrayBuffer, heapEndAddress: number | undefined, stackPointer: number): number {
  const end = heapEndAddress === undefined ? undefined : heapEnd(memory, heapEndAddress, stackPointer);
  return end ?? memory.byteLength;
}

function verificationFailed(detail: string): SnapshotRestoreError {
  return new SnapshotRestoreError(
    'verification-failed',
    false,
    `The restored engine does not match its snapshot (${detail}); reset it another way.`,
  );
}

/** The private parts of the engine a snapshot needs, checked to be where 0.4.6 has them. */
function internalsOf(pg: PGlite): Internals {
  const mod = (pg as unknown as { mod?: Record<string, unknown> }).mod;
  const missing = (what: string) => new EngineInternalsChangedError(`${what} (needed for engine snapshots)`);
  if (!mod) throw missing('the Emscripten module (PGlite.mod)');
  const heap = mod.HEAPU8;
  if (!(heap instanceof Uint8Array)) throw missing('Module.HEAPU8');
  const stackPointer = mod.___stack_pointer;
  if (!(stackPointer instanceof WebAssembly.Global)) throw missing('Module.___stack_pointer');
  const fs = mod.FS as Internals['fs'] | undefined;
  for (const name of ['hashAddNode', 'hashRemoveNode', 'isDir', 'isFile', 'open', 'readFile'] as const) {
    if (typeof fs?.[name] !== 'function') throw missing(`FS.${name}`);
  }
  if (!Array.isArray(fs?.streams) || !Array.isArray(fs?.nameTable) || typeof fs?.currentPath !== 'string') {
    throw missing('FS.streams, FS.nameTable and FS.currentPath');
  }
  const memfs = mod.MEMFS as Memfs | undefined;
  const ops = memfs?.ops_table;
  if (!ops?.dir?.node || !ops.file?.node || !ops.file.stream || !ops.link?.node)
    throw missing('MEMFS.ops_table');
  const malloc = mod._malloc;
  const free = mod._free;
  if (typeof malloc !== 'function' || typeof free !== 'function')
    throw missing('Module._malloc and Module._free');
  return {
    allocator: {
      malloc: (size) => (malloc as (size: number) => number)(size),
      free: (pointer) => (free as (pointer: number) => void)(pointer),
    },
    // Read each time: growing the memory replaces its buffer (and Emscripten's HEAP views).
    memory: () => (mod.HEAPU8 as Uint8Array).buffer as ArrayBuffer,
    stackPointer,
    fs: fs as Internals['fs'],
    memfs: memfs as Memfs,
  };
}

function factsOf(internals: Internals, log: MemfsChangeLog): string {
  const control = internals.fs.readFile(PGDATA_CONTROL_FILE);
  // Not the memory size: memory grown since the snapshot cannot shrink, and is zeroed instead.
  return [internals.stackPointer.value, log.streamFacts(), fnv1a(control).toString(16)].join('|');
}

function fnv1a(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (const byte of bytes) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash;
}

function simpleQuery(sql: string): Uint8Array {
  const body = Buffer.from(`${sql}\0`);
  const message = Buffer.alloc(5 + body.length);
  message.write('Q', 0);
  message.writeInt32BE(4 + body.length, 1);
  body.copy(message, 5);
  return message;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
