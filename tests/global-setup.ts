import { cachedCluster } from 'pglite-oxide';
import { TEST_CACHE_DIR } from './helpers/test-cache-dir.js';

// Builds the run's cluster cache once, before test files start installing roots in parallel.
// `test.env` reaches the test files only, so the cache dir is named here too.
export default async function setup(): Promise<void> {
  await cachedCluster({ cacheDir: TEST_CACHE_DIR });
}
