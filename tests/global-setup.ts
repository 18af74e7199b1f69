import { cachedCluster } from 'pglite-oxide';

// Builds the run's cluster cache once, before test files start installing roots in parallel.
export default async function setup(): Promise<void> {
  await cachedCluster();
}
