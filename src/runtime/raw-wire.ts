// The proxy's hot path into the engine. PGlite's execProtocolRawSync parses every byte the
// engine writes (for its own query API) and copies it twice; for raw wire traffic nobody reads
// that parse, and it costs about as much as the engine's own work on a short query. This module
// runs the same engine loop with wire callbacks of its own, and gives PGlite's back afterwards.
// It relies on private parts of the engine module, which tests/engine-internals.test.ts watches;
// when they are missing it falls back to execProtocolRawSync.
import type { PGlite } from '@electric-sql/pglite';
import { EngineInternalsChangedError } from '../errors.js';
import { withReleasedNotifications } from './client-channels.js';
import { ClientObjects } from './client-objects.js';
import { type ClientIdentity, ENGINE_ROLE, EngineIdentity } from './engine-identity.js';
import { EngineInterrupts } from './engine-interrupts.js';

/** The parts of the engine's Emscripten module this relies on. */
interface WireModule {
  HEAPU8: Uint8Array;
  addFunction(fn: (pointer: number, length: number) => number, signature: string): number;
  _pgl_set_rw_cbs(read: number, write: number): void;
  _PostgresMainLoopOnce(): void;
  _PostgresMainLongJmp(): void;
  _PostgresSendReadyForQueryIfNecessary(): void;
  _pgl_pq_flush(): void;
  _pq_buffer_remaining_data(): number;
}

const ENTRY_POINTS = [
  'addFunction',
  '_pgl_set_rw_cbs',
  '_PostgresMainLoopOnce',
  '_PostgresMainLongJmp',
  '_PostgresSendReadyForQueryIfNecessary',
  '_pgl_pq_flush',
  '_pq_buffer_remaining_data',
] as const;

/** Where PGlite's own callbacks were installed, per engine module. */
const pgliteCallbacks = new WeakMap<object, { read: number; write: number }>();
const wires = new WeakMap<PGlite, RawWire | null>();

/**
 * An Emscripten preRun hook: PGlite installs its wire callbacks once, right after the module
 * starts, and keeps their addresses private; this remembers them so they can be put back.
 */
export function rememberWireCallbacks(module: object): void {
  const candidate = module as Partial<WireModule>;
  const install = candidate._pgl_set_rw_cbs;
  if (typeof install !== 'function') return;
  candidate._pgl_set_rw_cbs = (read: number, write: number) => {
    if (!pgliteCallbacks.has(module)) pgliteCallbacks.set(module, { read, write });
    install.call(module, read, write);
  };
}

/**
 * Runs raw frontend bytes on the engine and returns its raw answer, as execProtocolRawSync does.
 * `as`: the client the call runs for (its login role and pid, see EngineIdentity); by default the
 * engine's own session. Fails when the engine cannot be made to enforce the client's role.
 */
export function execWire(engine: PGlite, bytes: Uint8Array, as?: ClientIdentity): Uint8Array {
  if (!as) {
    useObjectsOf(engine, ENGINE_OBJECTS);
    return withReleasedNotifications(engine, execWireAsEngine(engine, bytes));
  }
  const identity = EngineIdentity.of(engine);
  if (identity) {
    useObjectsOf(engine, as.pid);
    return withReleasedNotifications(
      engine,
      identity.runAs(as, () => execWireAsEngine(engine, bytes)),
    );
  }
  // An engine without the identity guard serves only its own login's equals (superusers).
  if (as.role !== ENGINE_ROLE) throw new EngineInternalsChangedError("the session's authenticated user");
  return execWireAsEngine(engine, bytes);
}

/** The pid that stands for the engine's own prepared statements, portals and temporary schema. */
const ENGINE_OBJECTS = 0;

/**
 * Puts client `pid`'s own objects in place for the calls that follow (see ClientObjects); `0` the
 * engine's own, as every caller of the PGlite API gets them.
 */
export function useObjectsOf(engine: PGlite, pid: number): void {
  ClientObjects.of(engine)?.enterFor(pid, (sql) => execWireAsEngine(engine, sql));
}

function execWireAsEngine(engine: PGlite, bytes: Uint8Array): Uint8Array {
  let wire = wires.get(engine);
  if (wire === undefined) {
    wire = RawWire.attach(engine);
    wires.set(engine, wire);
  }
  // A Terminate or a startup packet takes PGlite's own paths.
  if (!wire || bytes.length === 0 || bytes[0] === 0x58 || bytes[0] === 0)
    return engine.execProtocolRawSync(bytes);
  return wire.exec(bytes);
}

/** Whether execWire takes the fast path on this engine (for the internals test). */
export function hasFastWire(engine: PGlite): boolean {
  if (!wires.has(engine)) wires.set(engine, RawWire.attach(engine));
  return wires.get(engine) !== null;
}

const LONGJMP_STATUS = 100;

/** Something other than a PostgreSQL ERROR unwound the engine's stack: the engine must be replaced. */
export class EngineUnwoundError extends Error {
  constructor(cause: unknown) {
    super(`the engine's stack was unwound by ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
    this.name = 'EngineUnwoundError';
  }
}

function isExit(error: unknown): boolean {
  return (error as { name?: string })?.name === 'ExitStatus';
}

class RawWire {
  private input: Uint8Array = new Uint8Array(0);
  private readAt = 0;
  private output: Uint8Array[] = [];
  private outputBytes = 0;
  private readonly read: number;
  private readonly write: number;
  private readonly interrupts: EngineInterrupts | undefined;

  private constructor(
    private readonly module: WireModule,
    private readonly pglite: { read: number; write: number },
  ) {
    this.interrupts = EngineInterrupts.of(module);
    this.read = module.addFunction((pointer, length) => {
      const count = Math.min(length, this.input.length - this.readAt);
      this.module.HEAPU8.set(this.input.subarray(this.readAt, this.readAt + count), pointer);
      this.readAt += count;
      return count;
    }, 'iii');
    this.write = module.addFunction((pointer, length) => {
      this.output.push(this.module.HEAPU8.slice(pointer, pointer + length));
      this.outputBytes += length;
      return length;
    }, 'iii');
  }

  static attach(engine: PGlite): RawWire | null {
    const module = (engine as unknown as { mod?: Partial<WireModule> }).mod;
    if (!module) return null;
    const callbacks = pgliteCallbacks.get(module);
    if (!callbacks || ENTRY_POINTS.some((name) => typeof module[name] !== 'function')) return null;
    return new RawWire(module as WireModule, callbacks);
  }

  exec(bytes: Uint8Array): Uint8Array {
    const module = this.module;
    this.input = bytes;
    this.readAt = 0;
    this.output = [];
    this.outputBytes = 0;
    const exitCode = process.exitCode;
    module._pgl_set_rw_cbs(this.read, this.write);
    this.interrupts?.beginCall();
    let unwound = false;
    try {
      while (this.readAt < bytes.length || module._pq_buffer_remaining_data() > 0) {
        try {
          module._PostgresMainLoopOnce();
        } catch (error) {
          // An ERROR unwinds to the main loop with this status. Anything else (an exit, a trap, a
          // JavaScript exception from inside) went around PostgreSQL's error recovery: the session
          // is not safe to call again, unlike in PGlite's own loop, which carries on.
          if ((error as { status?: number })?.status !== LONGJMP_STATUS) {
            unwound = true;
            throw isExit(error) ? error : new EngineUnwoundError(error);
          }
          module._PostgresMainLongJmp();
        }
      }
    } finally {
      try {
        if (!unwound) {
          module._PostgresSendReadyForQueryIfNecessary();
          module._pgl_pq_flush();
        }
      } finally {
        this.interrupts?.endCall();
        module._pgl_set_rw_cbs(this.pglite.read, this.pglite.write);
        process.exitCode = exitCode;
        this.input = new Uint8Array(0);
      }
    }
    return this.takeOutput();
  }

  private takeOutput(): Uint8Array {
    const chunks = this.output;
    const total = this.outputBytes;
    this.output = [];
    this.outputBytes = 0;
    if (chunks.length === 1) return chunks[0]!;
    const joined = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      joined.set(chunk, at);
      at += chunk.length;
    }
    return joined;
  }
}
