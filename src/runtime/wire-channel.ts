// The engine thread's wire calls travel through shared memory: a request is written into it and
// the other side, which spins briefly before it sleeps, sees it within a microsecond; a message
// between threads costs ~50 µs here, as much as a short query. Requests and replies larger than
// the buffer travel as messages instead. Atomics.waitAsync alone does not always wake an idle
// event loop in Node 20, so a side that sleeps asynchronously is also woken by a message.
import type { ClientIdentity } from './engine-identity.js';

/** States of a call, in header slot STATE. */
export const IDLE = 0;
export const REQUEST = 1;
export const REPLY = 2;
/** The reply was too large for the buffer: it comes as a message. */
export const REPLY_POSTED = 3;
/** The call failed: the buffer holds the error as JSON ({ message, crashed }). */
export const FAILED = 4;

const STATE = 0;
const LENGTH = 1;
/** Set while the calling side waits for the reply asynchronously: it wants a message too. */
const CALLER_ASLEEP = 2;
/** A request's client (see ClientIdentity): its login role's oid and its pid; 0 for none. */
const AS_ROLE = 3;
const AS_PID = 4;
const HEADER_BYTES = 32;
/** Shared buffer for requests and replies; larger ones travel as messages. */
export const CHANNEL_BYTES = 4 * 1024 * 1024;

export interface CallFailure {
  message: string;
  /** The engine died (or was unwound) in the call; the next call starts a new one. */
  crashed: boolean;
}

export class WireChannel {
  private readonly header: Int32Array;
  private readonly data: Uint8Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(HEADER_BYTES + CHANNEL_BYTES)) {
    this.header = new Int32Array(buffer, 0, 5);
    this.data = new Uint8Array(buffer, HEADER_BYTES);
  }

  get state(): number {
    return Atomics.load(this.header, STATE);
  }

  fits(bytes: Uint8Array): boolean {
    return bytes.length <= this.data.length;
  }

  /** Writes `bytes` (a request: run for client `as`) and moves to `state`, waking the other side. */
  put(bytes: Uint8Array, state: number, as?: ClientIdentity): void {
    this.data.set(bytes);
    Atomics.store(this.header, LENGTH, bytes.length);
    Atomics.store(this.header, AS_ROLE, as?.role ?? 0);
    Atomics.store(this.header, AS_PID, as?.pid ?? 0);
    this.signal(state);
  }

  /** The client a request runs for (see put); undefined for the engine's own session. */
  get requestClient(): ClientIdentity | undefined {
    const pid = Atomics.load(this.header, AS_PID);
    return pid === 0 ? undefined : { role: Atomics.load(this.header, AS_ROLE) >>> 0, pid };
  }

  /** A copy of what the other side put. */
  take(): Uint8Array {
    return this.data.slice(0, Atomics.load(this.header, LENGTH));
  }

  signal(state: number): void {
    Atomics.store(this.header, STATE, state);
    Atomics.notify(this.header, STATE);
  }

  /** Spins up to `spinMs` while the state is `from`; returns the state then. */
  spinWhile(from: number, spinMs: number): number {
    return this.spin((state) => state !== from, spinMs);
  }

  /** Spins up to `spinMs` until the state is `to`; returns the state then. */
  spinUntil(to: number, spinMs: number): number {
    return this.spin((state) => state === to, spinMs);
  }

  private spin(done: (state: number) => boolean, spinMs: number): number {
    let state = this.state;
    if (done(state)) return state;
    const deadline = performance.now() + spinMs;
    for (let round = 0; ; round++) {
      state = this.state;
      if (done(state)) return state;
      // Reading the clock costs more than a look at the state: look often, read it rarely.
      if ((round & 1023) === 1023 && performance.now() > deadline) return state;
    }
  }

  /**
   * The caller's side: resolves once the state is no longer `from`, woken by the state itself or
   * by `woken` (the engine thread's message after a reply to a caller that was asleep).
   */
  async changeFrom(from: number, woken: () => Promise<void>): Promise<number> {
    for (;;) {
      Atomics.store(this.header, CALLER_ASLEEP, 1);
      const state = this.state;
      if (state !== from) {
        Atomics.store(this.header, CALLER_ASLEEP, 0);
        return state;
      }
      const wait = waitAsync(this.header, STATE, from);
      if (wait.async) await Promise.race([wait.value, woken()]);
    }
  }

  /** The engine thread's side, after a reply: whether the caller sleeps and needs a message. */
  callerAsleep(): boolean {
    return Atomics.exchange(this.header, CALLER_ASLEEP, 0) === 1;
  }

  /** The engine thread's side: blocks up to `ms` while the state is `from`; returns the state then. */
  sleepWhile(from: number, ms: number): number {
    Atomics.wait(this.header, STATE, from, ms);
    return this.state;
  }

  fail(failure: CallFailure): void {
    const bytes = Buffer.from(JSON.stringify(failure));
    this.put(bytes.subarray(0, this.data.length), FAILED);
  }

  failure(): CallFailure {
    return JSON.parse(Buffer.from(this.take()).toString('utf8')) as CallFailure;
  }
}

/** Atomics.waitAsync (Node 16+), which the TypeScript library of this target does not declare. */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      array: Int32Array,
      index: number,
      value: number,
    ): { async: boolean; value: Promise<string> | string };
  }
).waitAsync;
