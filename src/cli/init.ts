import { cachedCluster } from '../install/cluster-cache.js';
import { packageCacheDir } from '../install/project-dirs.js';
import { prepareTemplate } from '../template/prepare-template.js';
import type { TemplateFlags } from './ephemeral.js';

/** Builds what the first test run would otherwise build, so a CI cache step can keep it. */
export async function initCommand(flags: TemplateFlags): Promise<void> {
  const cluster = await cachedCluster();
  console.log(`cluster: ${cluster}`);
  if (flags.migrations || flags.seed) {
    const template = await prepareTemplate({ migrations: flags.migrations, seed: flags.seed });
    console.log(`template: ${template.pgdata} (${template.reused ? 'reused' : 'built'})`);
  }
  console.log(`cache: ${packageCacheDir()} (set PGLITE_OXIDE_CACHE_DIR to move it)`);
}
