import path from 'node:path';
import type { MessagePort, Worker } from 'node:worker_threads';
import { EngineCrashedError, EngineReplacedError, EngineStartError, RuntimeClosedError } from '../errors.js';
import { PglitePaths } from '../install/paths.js';
import type { ClientTable } from './client-table.js';
import { type ClusterImage, clusterImage } from './cluster-image.js';
import type { EngineSettings } from './engine.js';
import type { ClientIdentity } from './engine-identity.js';
import { EngineInterrupts, shareInterrupts } from './engine-interrupts.js';
import { standardEnv } from './env.js';
import { FileMirror } from './file-mirror.js';
import { compiledModule } from './wasm-modules.js';
import { type CallFailure, FAILED, IDLE, REPLY, REPLY_POSTED, REQUEST, WireChannel } from './wire-channel.js';
import { entryBeside, startWorker } from './worker-thread.js';

/** Which engine the thread opens: a cluster on disk, or an in-memory copy of a template. */
export interface EngineThreadSpec {
  kind: 'disk' | 'memory';
  runtimeRoot: string;
  /** The data directory (disk), or the template cluster the memory engine starts from. */
  pgdata: string;
  env?: Record<string, string>;
  settings?: EngineSettings;
  /** The oid range the engine counts in (see oid-range.ts); disk engines only. */
  oidRange?: number;
}

export interface EngineThreadData {
  spec: EngineThreadSpec;
  channel: SharedArrayBuffer;
  interrupts: Int32Array;
  pgliteWasm: WebAssembly.Module;
  /** The client table of the proxy that serves the engine, once it does. */
  clients?: SharedArrayBuffer;
  /** An in-memory engine: the files it starts from, and where it reports its files (file-mirror.ts). */
  image?: ClusterImage;
  mirror?: MessagePort;
}

export type ToEngineThread =
  /** A wire call as a message; with `blob`, attached to the engine's /dev/blob device. */
  | { type: 'exec'; id: number; bytes: Uint8Array; blob?: Uint8Array; as?: ClientIdentity }
  /** The proxy that serves the engine shares its client table. */
  | { type: 'clients'; buffer: SharedArrayBuffer }
  | { type: 'close' };

export type FromEngineThread =
  /** `enforcesLoginRoles`: calls can run as a client's login role (see execWire). */
  | { type: 'ready'; enforcesLoginRoles: boolean }
  | { type: 'failed'; reason: string }
  | { type: 'reply'; bytes: Uint8Array }
  /** A reply is in the channel, for a caller that was waiting asynchronously. */
  | { type: 'wake' }
  | { type: 'execReply'; id: number; bytes?: Uint8Array; error?: CallFailure };

/** How long a caller spins for a reply before it waits asynchronously (a short query's time). */
const REPLY_SPIN_MS = 0.25;
/** How long a stop waits for the running statement to end after asking it to, before ending the thread. */
const STOP_GRACE_MS = 500;

const engineThreadEntry = entryBeside(import.meta.url, 'engine-thread');

/**
 * An engine in a worker thread of its own. Wire calls are synchronous when the engine answers
 * within a short query's time, and asynchronous otherwise, so that a long statement never holds
 * the calling thread. A running statement can be asked to stop (57014), and when it does not
 * (it computes without ever calling out), the thread can be ended and a new engine started
 * that recovers to the last commit: from its data directory, or for an in-memory engine from
 * its files kept where they outlive the thread (see file-mirror.ts).
 */
export class ThreadedEngine {
  readonly env: Record<string, string>;
  private worker!: Worker;
  private channel!: WireChannel;
  private readonly interrupts = shareInterrupts(true).control;
  /** Settles when every call made so far has; the engine takes one call at a time. */
  private tail: Promise<unknown> = Promise.resolve();
  /** Calls made while another was in flight, not started yet. */
  private waiting = 0;
  private callInFlight = false;
  private callsStarted = 0;
  private replacing = false;
  private postedReply: ((bytes: Uint8Array) => void) | null = null;
  private wake: (() => void) | null = null;
  private readonly messageCalls = new Map<
    number,
    { resolve: (bytes: Uint8Array) => void; reject: (error: Error) => void }
  >();
  private nextMessageCall = 1;
  private threadLost: ((error: Error) => void) | null = null;
  private closed = false;
  private loginRolesEnforced = false;
  private clients: ClientTable | null = null;
  /** An in-memory engine's files, kept where they outlive its thread. */
  private mirror: FileMirror | null = null;

  private constructor(
    /** What the engine was started with. */
    readonly spec: EngineThreadSpec,
    private readonly pgliteWasm: WebAssembly.Module,
  ) {
    this.env = { ...standardEnv(), ...spec.env };
  }

  static async start(spec: EngineThreadSpec): Promise<ThreadedEngine> {
    const paths = new PglitePaths(spec.runtimeRoot, spec.pgdata);
    const engine = new ThreadedEngine(spec, await compiledModule(path.join(paths.binDir, 'pglite.wasm')));
    await engine.startThread();
    return engine;
  }

  /**
   * Synchronous when the engine answers within a short query's time. `as`: the client the call
   * runs for (see execWire).
   */
  exec(bytes: Uint8Array, as?: ClientIdentity): Uint8Array | Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new RuntimeClosedError());
    return this.schedule(() => (this.channel.fits(bytes) ? this.call(bytes, as) : this.post(bytes, as)));
  }

  /** Runs `bytes` with `data` attached to the engine's /dev/blob device (moved, not copied, when it can be). */
  async execWithBlob(bytes: Uint8Array, data: Uint8Array, as?: ClientIdentity): Promise<Uint8Array> {
    if (this.closed) throw new RuntimeClosedError();
    return this.schedule(() => this.post(bytes, as, data));
  }

  /** Shares the proxy's client table with the engine (see ClientTable); kept for engines started later. */
  attachClients(table: ClientTable): void {
    this.clients = table;
    this.worker.postMessage({ type: 'clients', buffer: table.buffer } satisfies ToEngineThread);
  }

  /** Whether the engine can run calls as a client's login role (see execWire). */
  enforcesLoginRoles(): boolean {
    return this.loginRolesEnforced;
  }

  /** Asks the statement running now to stop with 57014 (it stops at its next call out). */
  cancelRunning(): boolean {
    EngineInterrupts.cancelRunning(this.interrupts);
    return true;
  }

  /** Whether a call is running in the engine now. */
  get busy(): boolean {
    return this.callInFlight;
  }

  /** The engine's memory, in MiB: WebAssembly memory grows with big operations and never shrinks. */
  get memoryMiB(): number {
    return EngineInterrupts.memoryMiB(this.interrupts);
  }

  /** An in-memory engine's files as it last reported them; null for an engine on disk. */
  clusterFiles(): ClusterImage | null {
    return this.mirror?.image() ?? null;
  }

  /** Whether the engine keeps its data on disk, where a restart loses nothing committed. */
  get onDisk(): boolean {
    return this.spec.kind === 'disk';
  }

  /**
   * Closes the engine and opens it again on its data directory: the way to give back the memory
   * a big operation grew (WebAssembly memory never shrinks). Only between clients' work.
   */
  restart(): Promise<void> {
    const after = this.tail;
    return this.swapThread(async () => {
      await after;
      await this.closeThread();
    });
  }

  /** Counts the calls started; tells one long call from two in a row. */
  get callNumber(): number {
    return this.callsStarted;
  }

  /**
   * Ends the engine's thread and starts a new engine: the way to stop a statement that does not
   * stop when asked. Calls in flight fail with EngineCrashedError.
   */
  async replace(reason: string): Promise<void> {
    const kept = 'everything committed is kept';
    await this.swapThread(() =>
      this.endThread(new EngineReplacedError(`${reason}, so the engine was replaced (${kept})`)),
    );
  }

  /** Ends the thread as `end` does and starts a new engine; calls made meanwhile go to the new one. */
  private async swapThread(end: () => Promise<void>): Promise<void> {
    const swapping = (async () => {
      await end();
      await this.startThread();
    })();
    this.replacing = true;
    this.tail = swapping.catch(() => {});
    try {
      await swapping;
    } finally {
      this.replacing = false;
    }
  }

  /** Asks a running statement to stop, gives it a moment, then ends the thread. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.mirror?.close();
    if (this.callInFlight) {
      this.cancelRunning();
      await Promise.race([this.tail, delay(STOP_GRACE_MS)]);
    }
    if (this.callInFlight) {
      await this.endThread(new EngineCrashedError('The engine was stopped: the server shut down.'));
      return;
    }
    await this.closeThread();
  }

  /** Closes the engine in its thread (a clean shutdown of PostgreSQL), then the thread. */
  private async closeThread(): Promise<void> {
    const worker = this.worker;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage({ type: 'close' } satisfies ToEngineThread);
    const timer = setTimeout(() => void worker.terminate(), 5_000);
    await exited;
    clearTimeout(timer);
  }

  /** Runs `call` now when the engine is free, else after the calls made before it. */
  private schedule(call: () => Uint8Array | Promise<Uint8Array>): Uint8Array | Promise<Uint8Array> {
    if (!this.callInFlight && this.waiting === 0 && !this.replacing) return this.track(call());
    this.waiting++;
    const run = this.tail.then(() => {
      this.waiting--;
      return call();
    });
    this.tail = run.catch(() => {});
    return run;
  }

  private track(result: Uint8Array | Promise<Uint8Array>): Uint8Array | Promise<Uint8Array> {
    if (result instanceof Promise) this.tail = result.catch(() => {});
    return result;
  }

  /** Numbers the call, so that a cancel reaches it even before the engine thread picks it up. */
  private begin(): void {
    this.callInFlight = true;
    this.callsStarted++;
    EngineInterrupts.markCall(this.interrupts, this.callsStarted);
  }

  /** A wire call through shared memory: answered at once when the engine is quick. */
  private call(bytes: Uint8Array, as: ClientIdentity | undefined): Uint8Array | Promise<Uint8Array> {
    this.begin();
    this.channel.put(bytes, REQUEST, as);
    const state = this.channel.spinWhile(REQUEST, REPLY_SPIN_MS);
    return state === REQUEST ? this.awaitReply() : this.reply(state);
  }

  /** A call as a message: for requests larger than the shared buffer, and COPY data. */
  private post(bytes: Uint8Array, as: ClientIdentity | undefined, blob?: Uint8Array): Promise<Uint8Array> {
    this.begin();
    const id = this.nextMessageCall++;
    const reply = new Promise<Uint8Array>((resolve, reject) => {
      this.messageCalls.set(id, {
        resolve: (bytes) => resolve(this.finish(bytes)),
        reject: (error) => {
          this.finish(null);
          reject(error);
        },
      });
    });
    // A buffer of its own moves to the engine's thread; a slice of a shared one is copied.
    const movable = blob && blob.byteOffset === 0 && blob.byteLength === blob.buffer.byteLength;
    this.worker.postMessage(
      { type: 'exec', id, bytes, blob, as } satisfies ToEngineThread,
      movable ? [blob.buffer as ArrayBuffer] : [],
    );
    return reply;
  }

  private async awaitReply(): Promise<Uint8Array> {
    const lost = new Promise<never>((_, reject) => {
      this.threadLost = reject;
    });
    const woken = () =>
      new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    const state = await Promise.race([this.channel.changeFrom(REQUEST, woken), lost]);
    this.wake = null;
    const reply = this.reply(state);
    return reply instanceof Promise ? Promise.race([reply, lost]) : reply;
  }

  private reply(state: number): Uint8Array | Promise<Uint8Array> {
    if (state === REPLY) return this.finish(this.channel.take());
    if (state === FAILED) {
      const failure = this.channel.failure();
      this.finish(null);
      throw failedCall(failure);
    }
    if (state === REPLY_POSTED) {
      return new Promise<Uint8Array>((resolve) => {
        this.postedReply = (bytes) => resolve(this.finish(bytes)!);
      });
    }
    throw new EngineCrashedError(`The engine thread answered with an unknown state ${state}.`);
  }

  private finish<T extends Uint8Array | null>(bytes: T): T {
    this.channel.signal(IDLE);
    this.callInFlight = false;
    this.threadLost = null;
    return bytes;
  }

  private async startThread(): Promise<void> {
    this.channel = new WireChannel();
    Atomics.store(this.interrupts, 0, 0);
    const data: EngineThreadData = {
      spec: this.spec,
      channel: this.channel.buffer,
      interrupts: this.interrupts,
      pgliteWasm: this.pgliteWasm,
      clients: this.clients?.buffer,
    };
    if (this.spec.kind === 'memory') {
      // A new engine starts from the files the one before left (its thread may have been ended
      // mid-statement: PostgreSQL recovers to the last commit), the first from the template.
      const image = this.mirror?.image() ?? (await clusterImage(this.spec.pgdata));
      this.mirror?.close();
      this.mirror = new FileMirror(image);
      data.image = image;
      data.mirror = this.mirror.enginePort;
    }
    const worker = startWorker(
      engineThreadEntry,
      data,
      `pglite-oxide engine ${path.basename(this.spec.pgdata)}`,
      data.mirror ? [data.mirror] : [],
    );
    this.worker = worker;
    worker.unref();
    await new Promise<void>((resolve, reject) => {
      worker.on('message', (message: FromEngineThread) => {
        if (message.type === 'ready') {
          this.loginRolesEnforced = message.enforcesLoginRoles;
          resolve();
        } else if (message.type === 'failed')
          reject(new EngineStartError(`The engine could not start: ${message.reason}`));
        else if (message.type === 'reply') this.postedReply?.(message.bytes);
        else if (message.type === 'wake') this.wake?.();
        else if (message.type === 'execReply') this.settleMessageCall(message);
      });
      worker.once('error', (error) => {
        reject(new EngineStartError(`The engine thread failed: ${error.message}`));
        if (this.worker === worker)
          this.failInFlight(new EngineCrashedError(`The engine thread failed: ${error.message}`));
      });
      worker.once('exit', (code) => {
        reject(new EngineStartError(`The engine thread exited (code ${code}) before it was ready.`));
        if (this.worker === worker)
          this.failInFlight(new EngineCrashedError(`The engine thread exited (code ${code}).`));
      });
    });
  }

  private settleMessageCall(message: Extract<FromEngineThread, { type: 'execReply' }>): void {
    const call = this.messageCalls.get(message.id);
    if (!call) return;
    this.messageCalls.delete(message.id);
    if (message.error) call.reject(failedCall(message.error));
    else call.resolve(message.bytes!);
  }

  private async endThread(error: Error): Promise<void> {
    const worker = this.worker;
    this.failInFlight(error);
    await worker.terminate();
  }

  private failInFlight(error: Error): void {
    this.threadLost?.(error);
    this.threadLost = null;
    this.callInFlight = false;
    for (const call of this.messageCalls.values()) call.reject(error);
    this.messageCalls.clear();
  }
}

function failedCall(failure: CallFailure): Error {
  return failure.crashed ? new EngineCrashedError(failure.message) : new Error(failure.message);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
