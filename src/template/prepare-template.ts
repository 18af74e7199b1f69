import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { TemplateBuildError } from '../errors.js';
import { restoreCluster } from '../install/cluster-cache.js';
import { looksLikeCluster, stagingName } from '../install/fs-util.js';
import { install } from '../install/install.js';
import { withDirLock } from '../install/lock.js';
import { PglitePaths } from '../install/paths.js';
import { type ProgressListener, withProgress } from '../install/progress.js';
import { packageCacheDir } from '../install/project-dirs.js';
import { startProxy } from '../proxy/server.js';
import type { EngineSettings } from '../runtime/engine.js';
import { InteractiveRuntime } from '../runtime/interactive-runtime.js';
import { readSqlFiles, type SqlFile } from './sources.js';
import { templateKey } from './template-key.js';

export interface TemplateSetupContext {
  /** The engine being built, on its PGlite API. */
  pglite: PGlite;
  runtime: InteractiveRuntime;
  /**
   * A URL that reaches the same engine through a proxy, for migrators that want one
   * (node-pg-migrate, drizzle-kit, knex, kysely with pg). It stops when `setup` returns.
   */
  connectionString: string;
}

export interface TemplateOptions {
  /** `.sql` files or directories of them, applied in order (directories sorted by name). */
  migrations?: string | readonly string[];
  /** `.sql` files or directories applied after the migrations. */
  seed?: string | readonly string[];
  /** Runs after the SQL files: for migrators that are code (node-pg-migrate, drizzle, knex, kysely). */
  setup?: (context: TemplateSetupContext) => Promise<void> | void;
  /** Extra material for the cache key, e.g. a hash of the files a `setup` function reads. */
  key?: string;
  /** Environment overrides the engine runs with (see standardEnv). */
  env?: Record<string, string>;
  /** Server settings the engine runs with (over shared_buffers=16MB). */
  settings?: EngineSettings;
  cacheDir?: string;
  onProgress?: ProgressListener;
}

/** A migrated, seeded cluster, cached and ready to be copied for each test suite. */
export interface Template {
  key: string;
  /** The template's data directory. Copy it; never open it directly. */
  pgdata: string;
  /** The installed engine files every suite runs with. */
  runtimeRoot: string;
  env: Record<string, string>;
  settings: EngineSettings;
  reused: boolean;
}

/**
 * Returns the template for these migrations and seed, building it only when no cached template
 * has the same key. Parallel processes wait for one builder; a failed build leaves nothing behind.
 */
export async function prepareTemplate(options: TemplateOptions = {}): Promise<Template> {
  const cacheDir = options.cacheDir ?? packageCacheDir();
  const migrations = readSqlFiles(options.migrations);
  const seed = readSqlFiles(options.seed);
  const env = { ...options.env };
  const settings = { ...options.settings };
  const key = templateKey({
    migrations,
    seed,
    env,
    settings,
    extra: [options.setup?.toString() ?? '', options.key ?? ''],
  });
  const runtimeRoot = path.join(cacheDir, 'runtime');
  const templates = path.join(cacheDir, 'templates');
  const pgdata = path.join(templates, key);
  const template = { key, pgdata, runtimeRoot, env, settings };

  await install(PglitePaths.withRoot(runtimeRoot), { ensureCluster: false });
  if (looksLikeCluster(pgdata)) return { ...template, reused: true };

  await fs.mkdir(templates, { recursive: true });
  return withDirLock(templates, path.join(templates, `${key}.lock`), async () => {
    if (looksLikeCluster(pgdata)) return { ...template, reused: true };
    const staging = stagingName(pgdata);
    try {
      await restoreCluster(staging, options);
      await withProgress('pglite-oxide: building the migrated template', options.onProgress, () =>
        applyToCluster(new PglitePaths(runtimeRoot, staging), {
          migrations,
          seed,
          env,
          settings,
          setup: options.setup,
        }),
      );
      await fs.rm(pgdata, { recursive: true, force: true });
      await fs.rename(staging, pgdata);
    } finally {
      if (existsSync(staging)) await fs.rm(staging, { recursive: true, force: true });
    }
    return { ...template, reused: false };
  });
}

interface BuildSteps {
  migrations: SqlFile[];
  seed: SqlFile[];
  env: Record<string, string>;
  settings: EngineSettings;
  setup: TemplateOptions['setup'];
}

async function applyToCluster(paths: PglitePaths, steps: BuildSteps): Promise<void> {
  const runtime = await InteractiveRuntime.start(paths, { env: steps.env, settings: steps.settings });
  try {
    const pglite = await runtime.pglite();
    for (const [kind, files] of [
      ['migration', steps.migrations],
      ['seed file', steps.seed],
    ] as const) {
      for (const file of files) {
        try {
          await pglite.exec(file.sql);
        } catch (error) {
          throw TemplateBuildError.fromSql(kind, file, error);
        }
      }
    }
    if (steps.setup) {
      const proxy = await startProxy({ runtime, tcp: true, port: 0 });
      try {
        await steps.setup({ pglite, runtime, connectionString: proxy.connectionString });
      } catch (error) {
        throw new TemplateBuildError(
          `The template setup function failed: ${(error as Error).message}`,
          undefined,
          {
            cause: error,
          },
        );
      } finally {
        await proxy.clientsGone(2_000);
        await proxy.close();
      }
    }
  } finally {
    // A clean close checkpoints, so every copy of the template opens without recovery.
    await runtime.close();
  }
}
