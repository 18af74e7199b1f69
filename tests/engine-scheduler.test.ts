import { afterEach, describe, expect, it, vi } from 'vitest';
import { EngineScheduler, EngineWaitError } from '../src/proxy/database/engine-scheduler.js';

interface Client {
  name: string;
}

const alice: Client = { name: 'alice' };
const bob: Client = { name: 'bob' };
const carol: Client = { name: 'carol' };

type Outcome = { state: 'pending' } | { state: 'resolved' } | { state: 'rejected'; error: unknown };

/** Follows a wait without awaiting it, so a test can look at it after letting microtasks run. */
function track(wait: Promise<void> | null): { outcome: Outcome } {
  if (wait === null) throw new Error('expected a queued wait, got an immediate acquire');
  const tracked: { outcome: Outcome } = { outcome: { state: 'pending' } };
  wait.then(
    () => {
      tracked.outcome = { state: 'resolved' };
    },
    (error: unknown) => {
      tracked.outcome = { state: 'rejected', error };
    },
  );
  return tracked;
}

/** Lets pending promise callbacks run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

const scheduler = () => new EngineScheduler<Client>((holder) => `client ${holder.name}`);

afterEach(() => {
  vi.useRealTimers();
});

describe('EngineScheduler.acquire', () => {
  it('gives a free engine at once, without a promise', () => {
    const engine = scheduler();
    expect(engine.holder).toBeNull();
    expect(engine.acquire(alice, 1000)).toBeNull();
    expect(engine.holder).toBe(alice);
    expect(engine.isWaiting(alice)).toBe(false);
  });

  it('returns null when the holder asks again, and does not queue it', () => {
    const engine = scheduler();
    engine.acquire(alice, 1000);
    expect(engine.acquire(alice, 1000)).toBeNull();
    expect(engine.holder).toBe(alice);
    expect(engine.isWaiting(alice)).toBe(false);
  });

  it('queues a second client until the holder releases', async () => {
    const engine = scheduler();
    engine.acquire(alice, 0);
    const wait = engine.acquire(bob, 0);
    expect(wait).toBeInstanceOf(Promise);
    const bobWait = track(wait);
    expect(engine.isWaiting(bob)).toBe(true);
    await settle();
    expect(bobWait.outcome.state).toBe('pending');
    expect(engine.holder).toBe(alice);

    engine.release(alice, false);
    expect(engine.holder).toBe(bob);
    expect(engine.isWaiting(bob)).toBe(false);
    await settle();
    expect(bobWait.outcome.state).toBe('resolved');
  });

  it('serves waiters first come, first served', async () => {
    const engine = scheduler();
    engine.acquire(alice, 0);
    const bobWait = track(engine.acquire(bob, 0));
    const carolWait = track(engine.acquire(carol, 0));

    engine.release(alice, false);
    expect(engine.holder).toBe(bob);
    await settle();
    expect(bobWait.outcome.state).toBe('resolved');
    expect(carolWait.outcome.state).toBe('pending');

    engine.release(bob, false);
    expect(engine.holder).toBe(carol);
    await settle();
    expect(carolWait.outcome.state).toBe('resolved');

    engine.release(carol, false);
    expect(engine.holder).toBeNull();
  });

  it('queues a newcomer behind existing waiters rather than letting it jump the queue', () => {
    const engine = scheduler();
    engine.acquire(alice, 0);
    track(engine.acquire(bob, 0));
    // Alice is still the holder; carol must queue behind bob.
    expect(engine.acquire(carol, 0)).toBeInstanceOf(Promise);
    engine.release(alice, false);
    expect(engine.holder).toBe(bob);
    expect(engine.isWaiting(carol)).toBe(true);
  });
});

describe('EngineScheduler.release', () => {
  it('keeps the hold while the holder stays pinned', async () => {
    const engine = scheduler();
    engine.acquire(alice, 0);
    const bobWait = track(engine.acquire(bob, 0));
    engine.release(alice, true);
    expect(engine.holder).toBe(alice);
    await settle();
    expect(bobWait.outcome.state).toBe('pending');
    expect(engine.isWaiting(bob)).toBe(true);
  });

  it('does nothing when called by a client that does not hold the engine', async () => {
    const engine = scheduler();
    engine.acquire(alice, 0);
    const bobWait = track(engine.acquire(bob, 0));
    engine.release(bob, false);
    engine.release(carol, false);
    expect(engine.holder).toBe(alice);
    expect(engine.isWaiting(bob)).toBe(true);
    await settle();
    expect(bobWait.outcome.state).toBe('pending');
  });

  it('leaves the engine free when nobody waits', () => {
    const engine = scheduler();
    engine.acquire(alice, 0);
    engine.release(alice, false);
    expect(engine.holder).toBeNull();
    expect(engine.acquire(bob, 0)).toBeNull();
    expect(engine.holder).toBe(bob);
  });
});

describe('EngineScheduler.isWaiting', () => {
  it('is true only for queued clients, not for the holder or strangers', () => {
    const engine = scheduler();
    expect(engine.isWaiting(alice)).toBe(false);
    engine.acquire(alice, 0);
    track(engine.acquire(bob, 0));
    expect(engine.isWaiting(alice)).toBe(false);
    expect(engine.isWaiting(bob)).toBe(true);
    expect(engine.isWaiting(carol)).toBe(false);
  });
});

describe('EngineScheduler.seize', () => {
  it('takes the engine from a pinned holder without touching the queue', async () => {
    const engine = scheduler();
    engine.acquire(alice, 0);
    const carolWait = track(engine.acquire(carol, 0));
    engine.seize(bob);
    expect(engine.holder).toBe(bob);
    // The former holder no longer holds: its release is ignored.
    engine.release(alice, false);
    expect(engine.holder).toBe(bob);
    await settle();
    expect(carolWait.outcome.state).toBe('pending');

    engine.release(bob, false);
    expect(engine.holder).toBe(carol);
    await settle();
    expect(carolWait.outcome.state).toBe('resolved');
  });

  it('takes a free engine', () => {
    const engine = scheduler();
    engine.seize(alice);
    expect(engine.holder).toBe(alice);
    expect(engine.acquire(alice, 0)).toBeNull();
  });

  it('throws the close error once the scheduler is closed', () => {
    const engine = scheduler();
    const closed = new EngineWaitError('57P01', 'shutting down');
    engine.close(closed);
    expect(() => engine.seize(alice)).toThrow(closed);
    expect(engine.holder).toBeNull();
  });
});

describe('EngineScheduler.cancel', () => {
  it('rejects only that waiter with the given error and returns true', async () => {
    const engine = scheduler();
    engine.acquire(alice, 0);
    const bobWait = track(engine.acquire(bob, 0));
    const carolWait = track(engine.acquire(carol, 0));
    const error = new EngineWaitError('57014', 'canceling statement due to user request');

    expect(engine.cancel(bob, error)).toBe(true);
    expect(engine.isWaiting(bob)).toBe(false);
    expect(engine.isWaiting(carol)).toBe(true);
    await settle();
    expect(bobWait.outcome).toEqual({ state: 'rejected', error });
    expect(carolWait.outcome.state).toBe('pending');

    // Bob left the queue, so carol is next.
    engine.release(alice, false);
    expect(engine.holder).toBe(carol);
  });

  it('returns false and changes nothing for a client that is not waiting', () => {
    const engine = scheduler();
    engine.acquire(alice, 0);
    const error = new EngineWaitError('57014', 'cancel');
    expect(engine.cancel(bob, error)).toBe(false);
    // The holder is not a waiter either: cancel does not release it.
    expect(engine.cancel(alice, error)).toBe(false);
    expect(engine.holder).toBe(alice);
  });

  it('stops the queue timeout of the cancelled waiter', async () => {
    vi.useFakeTimers();
    const engine = scheduler();
    engine.acquire(alice, 0);
    const bobWait = track(engine.acquire(bob, 100));
    const error = new EngineWaitError('57014', 'cancelled');
    engine.cancel(bob, error);
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(1000);
    expect(bobWait.outcome).toEqual({ state: 'rejected', error });
  });
});

describe('EngineScheduler.forget', () => {
  it('releases the holder even when it would stay pinned, handing over to the next waiter', async () => {
    const engine = scheduler();
    engine.acquire(alice, 0);
    const bobWait = track(engine.acquire(bob, 0));
    engine.forget(alice, new EngineWaitError('08006', 'gone'));
    expect(engine.holder).toBe(bob);
    await settle();
    expect(bobWait.outcome.state).toBe('resolved');
  });

  it('ends the wait of a queued client without disturbing the holder', async () => {
    const engine = scheduler();
    engine.acquire(alice, 0);
    const bobWait = track(engine.acquire(bob, 0));
    const error = new EngineWaitError('08006', 'client went away');
    engine.forget(bob, error);
    expect(engine.holder).toBe(alice);
    expect(engine.isWaiting(bob)).toBe(false);
    await settle();
    expect(bobWait.outcome).toEqual({ state: 'rejected', error });
  });

  it('does nothing for a client it never saw', () => {
    const engine = scheduler();
    engine.acquire(alice, 0);
    engine.forget(carol, new EngineWaitError('08006', 'gone'));
    expect(engine.holder).toBe(alice);
  });
});

describe('EngineScheduler.close', () => {
  it('rejects every current wait and every later acquire with the given error', async () => {
    const engine = scheduler();
    engine.acquire(alice, 0);
    const bobWait = track(engine.acquire(bob, 0));
    const carolWait = track(engine.acquire(carol, 0));
    const error = new EngineWaitError('57P01', 'terminating connection due to administrator command');

    engine.close(error);
    expect(engine.holder).toBeNull();
    expect(engine.isWaiting(bob)).toBe(false);
    expect(engine.isWaiting(carol)).toBe(false);
    await settle();
    expect(bobWait.outcome).toEqual({ state: 'rejected', error });
    expect(carolWait.outcome).toEqual({ state: 'rejected', error });

    // Even a free engine, or the former holder, is refused now.
    await expect(engine.acquire(alice, 0)).rejects.toBe(error);
    await expect(engine.acquire(bob, 1000)).rejects.toBe(error);
  });

  it('clears the queue timers of the waits it ends', () => {
    vi.useFakeTimers();
    const engine = scheduler();
    engine.acquire(alice, 0);
    track(engine.acquire(bob, 500));
    expect(vi.getTimerCount()).toBe(1);
    engine.close(new EngineWaitError('57P01', 'closed'));
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('EngineScheduler queue timeout', () => {
  it('rejects with 55P03 naming the holder once the wait exceeds timeoutMs', async () => {
    vi.useFakeTimers();
    const engine = scheduler();
    engine.acquire(alice, 0);
    const bobWait = track(engine.acquire(bob, 250));

    await vi.advanceTimersByTimeAsync(249);
    expect(bobWait.outcome.state).toBe('pending');
    expect(engine.isWaiting(bob)).toBe(true);

    await vi.advanceTimersByTimeAsync(1);
    expect(bobWait.outcome.state).toBe('rejected');
    const { error } = bobWait.outcome as { error: unknown };
    expect(error).toBeInstanceOf(EngineWaitError);
    expect(error).toMatchObject({ name: 'EngineWaitError', sqlstate: '55P03' });
    expect((error as Error).message).toBe(
      'waited 250 ms (queueTimeoutMs) for client alice: one engine runs one transaction at a time, so commit or roll back that transaction first',
    );
    // The timed-out client left the queue: the next release frees the engine.
    expect(engine.isWaiting(bob)).toBe(false);
    engine.release(alice, false);
    expect(engine.holder).toBeNull();
  });

  it('uses "another client" when no describeHolder is given', async () => {
    vi.useFakeTimers();
    const engine = new EngineScheduler<Client>();
    engine.acquire(alice, 0);
    const bobWait = track(engine.acquire(bob, 10));
    await vi.advanceTimersByTimeAsync(10);
    expect(bobWait.outcome.state).toBe('rejected');
    expect((bobWait.outcome as { error: Error }).error.message).toMatch(
      /^waited 10 ms \(queueTimeoutMs\) for another client:/,
    );
  });

  it('names the holder at the moment of the timeout, not when the wait began', async () => {
    vi.useFakeTimers();
    const engine = scheduler();
    engine.acquire(alice, 0);
    const carolWait = track(engine.acquire(carol, 100));
    engine.seize(bob);
    await vi.advanceTimersByTimeAsync(100);
    expect((carolWait.outcome as { error: Error }).error.message).toContain('for client bob:');
  });

  it('times out only the waiter whose time is up; the others keep their place', async () => {
    vi.useFakeTimers();
    const engine = scheduler();
    engine.acquire(alice, 0);
    const bobWait = track(engine.acquire(bob, 50));
    const carolWait = track(engine.acquire(carol, 500));
    await vi.advanceTimersByTimeAsync(50);
    expect(bobWait.outcome.state).toBe('rejected');
    expect(carolWait.outcome.state).toBe('pending');
    engine.release(alice, false);
    expect(engine.holder).toBe(carol);
    await vi.advanceTimersByTimeAsync(1000);
    // Handing over cleared carol's timer: she was served, not timed out.
    expect(carolWait.outcome.state).toBe('resolved');
  });

  it('waits without limit when timeoutMs is 0, negative or not finite', async () => {
    vi.useFakeTimers();
    const engine = scheduler();
    engine.acquire(alice, 0);
    const waits = [
      track(engine.acquire(bob, 0)),
      track(engine.acquire(carol, -5)),
      track(engine.acquire({ name: 'dave' }, Number.POSITIVE_INFINITY)),
      track(engine.acquire({ name: 'erin' }, Number.NaN)),
    ];
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(24 * 60 * 60 * 1000);
    for (const wait of waits) expect(wait.outcome.state).toBe('pending');
  });
});
