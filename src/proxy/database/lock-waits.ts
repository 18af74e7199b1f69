// Clients waiting for an advisory lock another client holds. The engine cannot wait for it (the
// holder needs the engine to release it), so the waiter's statement fails there, and a statement
// that ran outside a transaction block waits here instead, off the engine, until a lock is
// released anywhere (the client table counts releases), then runs again (see runtime/
// advisory-locks.ts).
import type { EngineWaitError } from './engine-scheduler.js';

interface Waiter {
  wake(released: boolean): void;
  fail(error: EngineWaitError): void;
}

export class LockWaits {
  private readonly waiting = new Map<object, Waiter>();
  private seen = 0;

  /**
   * Waits until advisory locks may have been released (true) or `ms` passed (false); throws
   * EngineWaitError when the wait is cancelled.
   */
  wait(client: object, ms: number): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => waiter.wake(false), Math.max(ms, 0));
      const waiter: Waiter = {
        wake: (released) => {
          clearTimeout(timer);
          this.waiting.delete(client);
          resolve(released);
        },
        fail: (error) => {
          clearTimeout(timer);
          this.waiting.delete(client);
          reject(error);
        },
      };
      this.waiting.set(client, waiter);
    });
  }

  /** Whether `client` waits for a lock. */
  has(client: object): boolean {
    return this.waiting.has(client);
  }

  /** Ends `client`'s wait with `error`; false when it was not waiting. */
  cancel(client: object, error: EngineWaitError): boolean {
    const waiter = this.waiting.get(client);
    waiter?.fail(error);
    return waiter !== undefined;
  }

  /** Wakes every waiter when the count of releases moved since the last look (cheap when not). */
  released(count: number): void {
    if (count === this.seen) return;
    this.seen = count;
    this.wakeAll();
  }

  /** Wakes every waiter: a client left, and its locks with it. */
  wakeAll(): void {
    for (const waiter of [...this.waiting.values()]) waiter.wake(true);
  }
}
