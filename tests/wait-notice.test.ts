import { afterEach, describe, expect, it, vi } from 'vitest';
import { LONG_WAIT_MS, noticeLongWait } from '../src/wait-notice.js';

describe('a long wait is never silent', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('says what it waits for every 30 s, as it stands then, and nothing once it ends', async () => {
    vi.useFakeTimers();
    const notices: string[] = [];
    let finish!: (value: string) => void;
    let state = 'another process building the template';
    const waited = noticeLongWait(
      new Promise<string>((resolve) => (finish = resolve)),
      () => state,
      (message) => notices.push(message),
    );
    vi.advanceTimersByTime(LONG_WAIT_MS - 1);
    expect(notices).toEqual([]);
    vi.advanceTimersByTime(1);
    state = 'building the template: the migration 002_orders.sql is running';
    vi.advanceTimersByTime(LONG_WAIT_MS);
    expect(notices).toEqual([
      'pglite-oxide: still waiting after 30 s: another process building the template',
      'pglite-oxide: still waiting after 60 s: building the template: the migration 002_orders.sql is running',
    ]);
    finish('built');
    expect(await waited).toBe('built');
    vi.advanceTimersByTime(10 * LONG_WAIT_MS);
    expect(notices).toHaveLength(2);
  });
});
