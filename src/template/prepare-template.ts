import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { type SqlError, type SqlFailure, TemplateBuildError } from '../errors.js';
import { restoreCluster } from '../install/cluster-cache.js';
import { looksLikeCluster, stagingName } from '../install/fs-util.js';
import { install } from '../install/install.js';
import { withDirLock } from '../install/lock.js';
import { PglitePaths } from '../install/paths.js';
import { type ProgressListener, withProgress } from '../install/progress.js';
import { packageCacheDir } from '../install/project-dirs.js';
import { checkOptionNames } from '../option-names.js';
import { splitStatements } from '../protocol/sql-lexer.js';
import { startProxy } from '../proxy/server.js';
import { transactionControlOf } from '../proxy/sql/test-transaction.js';
import type { EngineSettings } from '../runtime/engine.js';
import { InteractiveRuntime } from '../runtime/interactive-runtime.js';
import { noticeLongWait } from '../wait-notice.js';
import { readSqlFiles, type SqlFile } from './sources.js';
import { pruneTemplates, touchTemplate } from './template-cache.js';
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
  /**
   * Templates the cache keeps, the most recently used (one per distinct set of migrations, seed
   * and settings, ~50 MB each): older ones are removed when a new one is built. Default 8.
   */
  maxTemplates?: number;
  onProgress?: ProgressListener;
}

const OPTION_NAMES = {
  migrations: true,
  seed: true,
  setup: true,
  key: true,
  env: true,
  settings: true,
  cacheDir: true,
  maxTemplates: true,
  onProgress: true,
} satisfies Record<keyof TemplateOptions, true>;

/** Every option of TemplateOptions, by name. */
export const TEMPLATE_OPTION_NAMES: readonly string[] = Object.keys(OPTION_NAMES);

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
  checkOptionNames(options, TEMPLATE_OPTION_NAMES, 'prepareTemplate()');
  const cacheDir = options.cacheDir ?? packageCacheDir();
  const migrations = readSqlFiles(options.migrations, console.warn);
  const seed = readSqlFiles(options.seed, console.warn);
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
  if (looksLikeCluster(pgdata)) {
    await touchTemplate(pgdata);
    return { ...template, reused: true };
  }

  await fs.mkdir(templates, { recursive: true });
  // What a wait here is for, as a notice says it after 30 s.
  const doing = { now: `another process building the migrated template ${key} (its lock: ${pgdata}.lock)` };
  const built = withDirLock(templates, path.join(templates, `${key}.lock`), async () => {
    if (looksLikeCluster(pgdata)) return { ...template, reused: true };
    doing.now = 'building the migrated template';
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
          doing,
        }),
      );
      await fs.rm(pgdata, { recursive: true, force: true });
      await fs.rename(staging, pgdata);
    } finally {
      if (existsSync(staging)) await fs.rm(staging, { recursive: true, force: true });
    }
    await pruneTemplates(cacheDir, { keep: options.maxTemplates });
    return { ...template, reused: false };
  });
  return noticeLongWait(built, () => doing.now);
}

/**
 * Where in `sql` the error of running it whole arose. A syntax error says (its position); an error
 * at run time (a foreign key, a missing table) does not, so the file's statements are run again
 * one by one, on the build that failed anyway, until one fails: when it fails the same way, that
 * is the place. The whole file ran as one transaction, which the error rolled back; a file that
 * ends transactions of its own may have kept some of its work, so it is not run again.
 */
async function failingStatement(pglite: PGlite, sql: string, error: unknown): Promise<SqlFailure> {
  const failure = { error: error as SqlError, offset: 0 };
  const statements = splitStatements(sql);
  if (failure.error.position || statements.some(([start, end]) => transactionControlOf(sql, start, end)))
    return failure;
  for (const [start, end] of statements) {
    try {
      await pglite.exec(sql.slice(start, end));
    } catch (again) {
      const same =
        (again as SqlError).code === failure.error.code &&
        (again as SqlError).message === failure.error.message;
      // The statement's own first line, not the blank lines before it.
      const lead = Math.max(sql.slice(start, end).search(/\S/), 0);
      return same ? { error: again as SqlError, offset: start + lead } : failure;
    }
  }
  return failure;
}

interface BuildSteps {
  migrations: SqlFile[];
  seed: SqlFile[];
  env: Record<string, string>;
  settings: EngineSettings;
  setup: TemplateOptions['setup'];
  /** What the build is doing now, for a notice when it takes long. */
  doing: { now: string };
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
        steps.doing.now = `building the migrated template: the ${kind} ${file.path} is running`;
        try {
          await pglite.exec(file.sql);
        } catch (error) {
          throw TemplateBuildError.fromSql(kind, file, await failingStatement(pglite, file.sql, error));
        }
      }
    }
    if (steps.setup) {
      steps.doing.now = 'building the migrated template: the setup function is running';
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
