import { existsSync } from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';
import { ClusterCorruptedError, EngineStartError } from '../errors.js';
import { assertUsableCluster } from '../install/install.js';
import type { PglitePaths } from '../install/paths.js';
import { quoteIdent } from '../protocol/sql-quote.js';
import type { ClientTableHolder } from './client-table.js';
import { instrumentEngine } from './engine-instruments.js';
import { EngineInterrupts, type SharedInterrupts } from './engine-interrupts.js';
import { settingsFromEnv } from './env.js';
import { moveOidCounter } from './oid-range.js';
import { rememberWireCallbacks } from './raw-wire.js';
import { compiledModule, fsBundle } from './wasm-modules.js';

export type EngineSettings = Record<string, string | number | boolean>;

/**
 * Server settings the engine starts with unless overridden. Postgres spends most of its start
 * first-touching shared_buffers (~470 ms for the stock 128 MB here); 16 MB starts in ~90 ms and is
 * plenty for the small databases of tests and tools.
 */
export const DEFAULT_ENGINE_SETTINGS: EngineSettings = { shared_buffers: '16MB' };

const BUILTIN_DATABASES = new Set(['template1', 'template0', 'postgres']);

export interface EngineSpec {
  paths: PglitePaths;
  env: Record<string, string>;
  settings: EngineSettings;
  wasmPath: string;
  /** Shared control of the engine's interrupts, for a canceller on another thread. */
  interrupts?: SharedInterrupts;
  /** Where the engine finds the clients of the proxy that serves it (see ClientTableHolder). */
  clients?: ClientTableHolder;
  /** The oid range the engine counts in (see oid-range.ts); the cluster's own by default. */
  oidRange?: number;
}

/** Opens the engine on an existing cluster; creates the environment's database if it is missing. */
export async function openEngine(spec: EngineSpec): Promise<PGlite> {
  const { paths } = spec;
  if (!existsSync(path.join(paths.pgdata, 'PG_VERSION'))) {
    throw new EngineStartError(
      `There is no cluster in ${paths.pgdata}. Install one first (installAndInitIn or ensureCluster).`,
    );
  }
  assertUsableCluster(paths);
  const database = spec.env.PGDATABASE ?? 'postgres';
  try {
    return await createPGlite(spec, database);
  } catch (firstError) {
    if (BUILTIN_DATABASES.has(database)) throw startFailure(paths, firstError);
    // The usual reason a custom database fails to open: it does not exist yet.
    const bootstrap = await createPGlite(spec, 'template1').catch((error) => {
      throw startFailure(paths, error);
    });
    try {
      const found = await bootstrap.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
      if (found.rows.length > 0) throw startFailure(paths, firstError);
      await bootstrap.exec(`CREATE DATABASE ${quoteIdent(database)}`);
    } finally {
      await bootstrap.close();
    }
    return createPGlite(spec, database);
  }
}

async function createPGlite(spec: EngineSpec, database: string): Promise<PGlite> {
  const binDir = path.dirname(spec.wasmPath);
  const [pgliteWasmModule, bundle] = await Promise.all([
    compiledModule(spec.wasmPath),
    fsBundle(path.join(spec.paths.shareDir, 'pglite.data')),
  ]);
  const initdb = path.join(binDir, 'initdb.wasm');
  const engine = await PGlite.create({
    dataDir: spec.paths.pgdata,
    fs: new WireAwareNodeFS(spec.paths.pgdata, new EngineInterrupts(spec.interrupts)),
    pgliteWasmModule,
    // Handing over the installed initdb module keeps the engine from reading its own copy.
    initdbWasmModule: existsSync(initdb) ? await compiledModule(initdb) : undefined,
    fsBundle: bundle,
    username: spec.env.PGUSER,
    database,
    startParams: startParams(spec.env, spec.settings),
  });
  await instrumentEngine(engine, spec.clients);
  if (spec.oidRange !== undefined) moveOidCounter((engine as unknown as { mod: object }).mod, spec.oidRange);
  return engine;
}

/** The on-disk filesystem, plus the hooks of the fast wire path and of interrupts. */
class WireAwareNodeFS extends NodeFS {
  constructor(
    dataDir: string,
    private readonly interrupts: EngineInterrupts,
  ) {
    super(dataDir);
  }

  override async init(pg: PGlite, options: Parameters<NodeFS['init']>[1]) {
    const { emscriptenOpts } = await super.init(pg, options);
    const preRun = [...(emscriptenOpts.preRun ?? []), rememberWireCallbacks];
    return { emscriptenOpts: this.interrupts.wrapOptions({ ...emscriptenOpts, preRun }) };
  }
}

/** The engine's start parameters: its defaults, then our defaults, the environment's and the caller's settings. */
export function startParams(env: Record<string, string>, settings: EngineSettings = {}): string[] {
  const merged = { ...DEFAULT_ENGINE_SETTINGS, ...settingsFromEnv(env), ...settings };
  return [
    ...PGlite.defaultStartParams,
    ...Object.entries(merged).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
  ];
}

function startFailure(paths: PglitePaths, error: unknown): ClusterCorruptedError {
  const reason =
    error instanceof Error ? error.message : String((error as { message?: string })?.message ?? error);
  return new ClusterCorruptedError(
    paths.pgdata,
    paths.pgroot,
    `the engine could not start on it (${reason})`,
    {
      cause: error,
    },
  );
}
