// PostgreSQL stops a running statement from a signal handler: a cancel sets QueryCancelPending
// and InterruptPending, a timeout is SIGALRM. The engine has neither signals nor timers, and its
// memory is not shared with other threads. But it calls JavaScript (clock reads, file I/O) while
// it sleeps, waits or spills to disk; at those calls this module delivers what a signal would:
// a cancel requested from any thread (through a SharedArrayBuffer), and the engine's own alarm
// once its deadline has passed (statement_timeout). A statement that computes without calling
// out (a large cross join in memory) cannot be reached this way; the caller must replace the
// engine to stop it. Private engine parts: tests/engine-internals.test.ts watches them.
import { EngineInternalsChangedError } from '../errors.js';

type Imports = Record<string, unknown>;
type InstantiateWasm = (
  imports: Record<string, Imports>,
  done: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void,
) => unknown;

interface InterruptibleModule {
  HEAP32: Int32Array;
  HEAPU32: Uint32Array;
  _InterruptPending: number;
  _QueryCancelPending: number;
  _MyLatch: number;
}

/** Slots of the shared control array. */
const CANCEL = 0;
const RUNNING = 1;
/** The engine's memory after its last call, in MiB (WebAssembly memory only grows). */
const MEMORY_MIB = 2;
/** 1 while a call runs. */
const BUSY = 3;
export const CONTROL_SLOTS = 4;
const NO_DEADLINE = Number.POSITIVE_INFINITY;
const IDLE_ALARM_DEFER_MS = 1;
const interruptsOfModule = new WeakMap<object, EngineInterrupts>();

/** An engine's interrupts shared with another thread, which may cancel what it runs. */
export interface SharedInterrupts {
  control: Int32Array;
  /**
   * The other thread numbers the calls it makes (markCall before each), so that a cancel asked
   * for a call the engine has not begun yet still reaches it. Otherwise the engine counts them,
   * and a cancel reaches whatever call runs when it is asked.
   */
  numberedByCaller: boolean;
}

export function shareInterrupts(numberedByCaller: boolean): SharedInterrupts {
  return { control: newControl(), numberedByCaller };
}

function newControl(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(CONTROL_SLOTS * 4));
}

export class EngineInterrupts {
  /** [CANCEL]: the call to cancel; [RUNNING]: the call running now. Shared with other threads. */
  readonly control: Int32Array;
  private module: InterruptibleModule | null = null;
  private deliverAlarm: ((which: number, now: number) => void) | null = null;
  private alarmAt = NO_DEADLINE;
  private alarmWhich = 0;
  private inCall = false;
  private readonly countsCalls: boolean;

  constructor(shared?: SharedInterrupts) {
    this.countsCalls = !shared?.numberedByCaller;
    this.control = shared?.control ?? newControl();
  }

  /**
   * The engine's table of functions (what C function pointers index), kept as the module starts:
   * how a function PostgreSQL keeps a pointer to is called from here.
   */
  functionTable: WebAssembly.Table | null = null;

  /** The interrupts of an engine module, once it has started with them. */
  static of(module: object): EngineInterrupts | undefined {
    return interruptsOfModule.get(module);
  }

  /** Emscripten options that route the engine's imports through this object. */
  wrapOptions<T extends { instantiateWasm?: unknown; preRun?: unknown }>(options: T): T {
    const instantiate = options.instantiateWasm as InstantiateWasm | undefined;
    if (typeof instantiate !== 'function')
      throw new EngineInternalsChangedError("the engine's instantiateWasm hook");
    const preRun = [
      ...((options.preRun as Array<(module: object) => void>) ?? []),
      (module: object) => this.attach(module),
    ];
    const instantiateWasm: InstantiateWasm = (imports, done) => {
      const table = (imports as { env?: { __indirect_function_table?: unknown } }).env
        ?.__indirect_function_table;
      if (table instanceof WebAssembly.Table) this.functionTable = table;
      return instantiate(this.wrapImports(imports), (instance, module) => {
        const timeout = instance.exports._emscripten_timeout;
        if (typeof timeout !== 'function')
          throw new EngineInternalsChangedError('the export _emscripten_timeout');
        this.deliverAlarm = timeout as (which: number, now: number) => void;
        done(instance, module);
      });
    };
    return { ...options, instantiateWasm, preRun };
  }

  /**
   * A new call into the engine starts. An alarm set in an earlier call stays set, as a real one
   * would (PostgreSQL does not re-arm a timer that is due sooner), but one that came due between
   * calls waits a moment more: the engine first turns off its idle timeouts as the command comes
   * in, so it sees only the timeouts of the work at hand (statement_timeout) and never ends its
   * session for idling (the proxy keeps clients' idle timeouts itself).
   */
  beginCall(): void {
    if (this.countsCalls) Atomics.add(this.control, RUNNING, 1);
    Atomics.store(this.control, BUSY, 1);
    this.inCall = true;
    if (this.alarmAt !== NO_DEADLINE)
      this.alarmAt = Math.max(this.alarmAt, performance.now() + IDLE_ALARM_DEFER_MS);
  }

  /** The call ended: no alarm is delivered until the next one. */
  endCall(): void {
    this.inCall = false;
    Atomics.store(this.control, BUSY, 0);
    const memory = this.module?.HEAP32.buffer.byteLength;
    if (memory !== undefined) Atomics.store(this.control, MEMORY_MIB, Math.ceil(memory / 1024 / 1024));
  }

  /** The engine's memory after its last call, in MiB, as the engine's thread reported it. */
  static memoryMiB(control: Int32Array): number {
    return Atomics.load(control, MEMORY_MIB);
  }

  /** Asks the call running now, if any, to stop with 57014 (from any thread that has `control`). */
  static cancelRunning(control: Int32Array): void {
    Atomics.store(control, CANCEL, Atomics.load(control, RUNNING));
  }

  /** The number of the call running now, or null when the engine is between calls. */
  static runningCall(control: Int32Array): number | null {
    return Atomics.load(control, BUSY) === 1 ? Atomics.load(control, RUNNING) : null;
  }

  /** The caller that numbers calls: `call` is the one it makes next. */
  static markCall(control: Int32Array, call: number): void {
    Atomics.store(control, RUNNING, call);
  }

  private attach(module: object): void {
    const candidate = module as Partial<InterruptibleModule>;
    for (const name of ['_InterruptPending', '_QueryCancelPending', '_MyLatch'] as const) {
      if (typeof candidate[name] !== 'number') throw new EngineInternalsChangedError(`the symbol ${name}`);
    }
    this.module = candidate as InterruptibleModule;
    interruptsOfModule.set(module, this);
  }

  private wrapImports(imports: Record<string, Imports>): Record<string, Imports> {
    const wrapped = { ...imports };
    for (const space of ['env', 'wasi_snapshot_preview1']) {
      if (imports[space]) wrapped[space] = this.wrapSpace(imports[space]);
    }
    return wrapped;
  }

  private wrapSpace(space: Imports): Imports {
    const cache = new Map<string, unknown>();
    const setAlarm = (which: number, ms: number) => {
      // Keeps the alarm here instead of in a JavaScript timer, which cannot fire while the engine runs.
      this.alarmWhich = which;
      this.alarmAt = ms > 0 ? performance.now() + ms : NO_DEADLINE;
      return 0;
    };
    // The environment may resolve names lazily (the engine links extensions at run time).
    return new Proxy(space, {
      get: (target, name, receiver) => {
        const value = Reflect.get(target, name, receiver);
        if (typeof name !== 'string' || typeof value !== 'function' || name.startsWith('invoke_'))
          return value;
        if (name === '_setitimer_js') return setAlarm;
        let wrapper = cache.get(name);
        if (!wrapper) {
          const original = value as (...args: unknown[]) => unknown;
          wrapper = (...args: unknown[]) => {
            this.check();
            return original(...args);
          };
          cache.set(name, wrapper);
        }
        return wrapper;
      },
    });
  }

  private check(): void {
    // Only a call of ours is cancelled: never the engine's start or a call through PGlite's API.
    const cancel = this.control[CANCEL]!;
    if (cancel !== 0 && this.inCall) {
      Atomics.store(this.control, CANCEL, 0);
      if (cancel === this.control[RUNNING]) this.raiseCancel();
    }
    if (this.alarmAt !== NO_DEADLINE && this.inCall) {
      const now = performance.now();
      if (now >= this.alarmAt) {
        this.alarmAt = NO_DEADLINE;
        this.deliverAlarm?.(this.alarmWhich, now);
      }
    }
  }

  /** What PostgreSQL's SIGINT handler does: flag the cancel and wake the latch a wait sleeps on. */
  private raiseCancel(): void {
    const module = this.module;
    if (!module) return;
    module.HEAP32[module._QueryCancelPending >> 2] = 1;
    module.HEAP32[module._InterruptPending >> 2] = 1;
    const latch = module.HEAPU32[module._MyLatch >> 2]!;
    if (latch !== 0) module.HEAP32[latch >> 2] = 1;
  }
}
