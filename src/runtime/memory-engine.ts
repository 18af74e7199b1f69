import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { MemoryFS, PGlite } from '@electric-sql/pglite';
import { EngineStartError } from '../errors.js';
import { PglitePaths } from '../install/paths.js';
import { DEFAULT_ENGINE_SETTINGS, type EngineSettings } from './engine.js';
import { settingsFromEnv } from './env.js';
import { compiledModule, fsBundle } from './wasm-modules.js';

export interface MemoryEngineOptions {
  /** A cluster to start from (e.g. `prepareTemplate()`'s `pgdata`). It is read, never written. */
  templatePgdata: string;
  /** The installed runtime the engine files come from (e.g. `prepareTemplate()`'s `runtimeRoot`). */
  runtimeRoot: string;
  /** PGUSER, PGDATABASE (default template1), TZ/PGTZ, PGCLIENTENCODING, PGDATESTYLE. */
  env?: Record<string, string>;
  /** Server settings (`-c name=value`) over the defaults (shared_buffers=16MB). */
  settings?: EngineSettings;
}

/** Where the engine expects its data directory inside its own filesystem. */
const GUEST_PGDATA = '/pglite/data';

/** A cluster's files held in memory, ready to be written into any number of engines. */
interface ClusterImage {
  /** Directories relative to the cluster root, parents before children. */
  dirs: string[];
  files: Array<{ path: string; bytes: Uint8Array }>;
}

// A template is immutable once built (its directory name is a hash of its content), so one read
// per process serves every engine started from it.
const images = new Map<string, Promise<ClusterImage>>();

function clusterImage(pgdata: string): Promise<ClusterImage> {
  const key = path.resolve(pgdata);
  let image = images.get(key);
  if (!image) {
    image = readClusterImage(key);
    image.catch(() => images.delete(key));
    images.set(key, image);
  }
  return image;
}

async function readClusterImage(root: string): Promise<ClusterImage> {
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true });
  const relative = (entry: { parentPath: string; name: string }) =>
    path.relative(root, path.join(entry.parentPath, entry.name)).split(path.sep).join('/');
  const dirs = entries
    .filter((entry) => entry.isDirectory())
    .map(relative)
    .sort((a, b) => a.split('/').length - b.split('/').length);
  const files = await Promise.all(
    entries
      .filter((entry) => entry.isFile())
      .map(async (entry) => ({
        path: relative(entry),
        bytes: new Uint8Array(await fs.readFile(path.join(entry.parentPath, entry.name))),
      })),
  );
  return { dirs, files };
}

/** The part of Emscripten's FS this module writes with. */
interface GuestFS {
  mkdirTree(path: string, mode?: number): void;
  mkdir(path: string, mode?: number): void;
  writeFile(path: string, data: Uint8Array): void;
}

/** PGlite's in-memory filesystem, filled with a cluster before Postgres starts. */
class ClusterMemoryFS extends MemoryFS {
  constructor(private readonly image: ClusterImage) {
    super();
  }

  override async init(pg: PGlite, emscriptenOptions: Parameters<MemoryFS['init']>[1]) {
    const { emscriptenOpts } = await super.init(pg, emscriptenOptions);
    const image = this.image;
    const fillDataDir = (mod: { FS: GuestFS }) => {
      mod.FS.mkdirTree(GUEST_PGDATA, 0o700);
      for (const dir of image.dirs) mod.FS.mkdir(`${GUEST_PGDATA}/${dir}`, 0o700);
      // writeFile copies the bytes: the image is shared by every engine of this process.
      for (const file of image.files) mod.FS.writeFile(`${GUEST_PGDATA}/${file.path}`, file.bytes);
    };
    return { emscriptenOpts: { ...emscriptenOpts, preRun: [...(emscriptenOpts.preRun ?? []), fillDataDir] } };
  }
}

/**
 * Starts an engine whose data directory lives in memory, filled from a template cluster. Nothing
 * it does reaches the disk, so any number of engines may start from one template. The template
 * is read from disk once per process.
 */
export async function openMemoryEngine(options: MemoryEngineOptions): Promise<PGlite> {
  const templatePgdata = path.resolve(options.templatePgdata);
  if (!existsSync(path.join(templatePgdata, 'PG_VERSION'))) {
    throw new EngineStartError(`There is no cluster in ${templatePgdata} to start an in-memory engine from.`);
  }
  const paths = new PglitePaths(options.runtimeRoot, templatePgdata);
  const env = options.env ?? {};
  const settings = { ...DEFAULT_ENGINE_SETTINGS, ...settingsFromEnv(env), ...options.settings };
  const [image, pgliteWasmModule, bundle] = await Promise.all([
    clusterImage(templatePgdata),
    compiledModule(path.join(paths.binDir, 'pglite.wasm')),
    fsBundle(path.join(paths.shareDir, 'pglite.data')),
  ]);
  const exitCode = process.exitCode;
  try {
    return await PGlite.create({
      fs: new ClusterMemoryFS(image),
      pgliteWasmModule,
      fsBundle: bundle,
      username: env.PGUSER,
      database: env.PGDATABASE ?? 'template1',
      startParams: [
        ...PGlite.defaultStartParams,
        ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
      ],
    });
  } catch (error) {
    throw new EngineStartError(
      `The in-memory engine could not start from ${templatePgdata}: ${(error as Error)?.message ?? error}`,
      { cause: error },
    );
  } finally {
    // A failed start calls exit() inside the engine, which must not become the host's exit code.
    process.exitCode = exitCode;
  }
}
