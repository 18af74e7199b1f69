// Vitest setupFiles entry of pglite-oxide (added by the plugin, ahead of the project's own): runs
// in each test file's context before the file's modules are imported, and leases its database.
import { leaseBeforeImports } from './vitest.js';

await leaseBeforeImports();
