import os from 'node:os';
import path from 'node:path';

/** One cluster cache for the whole test run, apart from the user's own cache. */
export const TEST_CACHE_DIR = path.join(os.tmpdir(), 'pglite-oxide-test-cache');
