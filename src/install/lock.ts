import lockfile from 'proper-lockfile';
import { LockTimeoutError } from '../errors.js';

// The lock's mtime is refreshed every UPDATE_MS; a lock older than STALE_MS belongs to a dead
// process and is taken over. Heavy work (initdb) runs in a worker so the refresh keeps ticking.
const STALE_MS = 5_000;
const UPDATE_MS = 1_000;

/**
 * Runs `fn` while holding an exclusive lock on `dir` across processes.
 * A second process waits (up to `waitMs`) and then runs `fn` itself, which should find the work done.
 */
export async function withDirLock<T>(
  dir: string,
  lockfilePath: string,
  fn: () => Promise<T>,
  waitMs = 5 * 60_000,
): Promise<T> {
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(dir, {
      lockfilePath,
      stale: STALE_MS,
      update: UPDATE_MS,
      realpath: false,
      retries: { retries: Math.ceil(waitMs / 500), factor: 1, minTimeout: 100, maxTimeout: 500 },
      // A compromised lock (its mtime could not be refreshed) is reported when we release it;
      // throwing from this callback would surface as an uncaught exception in a timer.
      onCompromised: () => {},
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOCKED')
      throw new LockTimeoutError(lockfilePath, { cause: error });
    throw error;
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => {});
  }
}
