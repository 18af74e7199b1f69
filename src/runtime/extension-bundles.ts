// The extensions the pinned engine ships, as bundles in its package (`dist/<name>.tar.gz`: the
// files under share/postgresql/extension and lib/postgresql, relative to the engine's prefix).
// An engine gets a bundle's files the moment PostgreSQL first looks for one of them: a CREATE
// EXTENSION, a function of an extension a template already has, a LOAD. An extension nobody uses
// costs nothing.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Parser } from 'tar';
import { EngineInternalsChangedError } from '../errors.js';
import { pgliteDistDir } from '../install/engine-assets.js';

/** The directories PostgreSQL looks in for extension files, relative to the engine's prefix. */
export const EXTENSION_DIR = 'share/postgresql/extension';
export const LIBRARY_DIR = 'lib/postgresql';

/** The files of one bundle, by their path relative to the engine's prefix. */
export type BundleFiles = ReadonlyMap<string, Buffer>;

/** The bundles of one engine package, read lazily and kept for the process. */
export class ExtensionBundles {
  private readonly contents = new Map<string, BundleFiles>();
  private owners: Map<string, string> | null = null;

  constructor(private readonly distDir: string) {}

  /** The bundles' names (`vector`, `uuid-ossp`, `auto_explain`, ...). */
  names(): string[] {
    if (!existsSync(this.distDir)) return [];
    return readdirSync(this.distDir)
      .filter((file) => file.endsWith('.tar.gz'))
      .map((file) => file.slice(0, -'.tar.gz'.length))
      .sort();
  }

  /** The bundle that has `file` (relative to the prefix), if any. Reads every bundle once. */
  bundleOf(file: string): string | undefined {
    if (!this.owners) {
      const owners = new Map<string, string>();
      for (const name of this.names()) for (const owned of this.files(name).keys()) owners.set(owned, name);
      this.owners = owners;
    }
    return this.owners.get(file);
  }

  files(name: string): BundleFiles {
    let files = this.contents.get(name);
    if (!files) {
      files = readBundle(path.join(this.distDir, `${name}.tar.gz`));
      this.contents.set(name, files);
    }
    return files;
  }

  /** The control files of every bundle: what `pg_available_extensions` lists. */
  controlFiles(): Array<[string, Buffer]> {
    const controls: Array<[string, Buffer]> = [];
    for (const name of this.names()) {
      for (const [file, data] of this.files(name)) {
        if (file.startsWith(`${EXTENSION_DIR}/`) && file.endsWith('.control')) controls.push([file, data]);
      }
    }
    return controls;
  }
}

let shipped: ExtensionBundles | undefined;

/** The bundles of the pinned engine. */
export function shippedBundles(): ExtensionBundles {
  shipped ??= new ExtensionBundles(pgliteDistDir());
  return shipped;
}

/** The regular files of a gzipped tar, read synchronously (node-tar parses a buffer as it is written). */
function readBundle(file: string): BundleFiles {
  const files = new Map<string, Buffer>();
  const parser = new Parser({
    onReadEntry: (entry) => {
      if (entry.type !== 'File') {
        entry.resume();
        return;
      }
      const chunks: Buffer[] = [];
      entry.on('data', (chunk: Buffer) => chunks.push(chunk));
      entry.on('end', () => files.set(entry.path.replace(/^\.\//, ''), Buffer.concat(chunks)));
    },
  });
  parser.end(gunzipSync(readFileSync(file)));
  return files;
}

/** The part of Emscripten's FS the loader wraps. */
interface LoaderFS {
  lookupNode(parent: unknown, name: string): unknown;
  readdir(path: string): string[];
  getPath(node: unknown): string;
  mkdirTree(path: string, mode?: number): void;
  writeFile(path: string, data: Uint8Array): void;
}

/** Emscripten's errno for "no such file or directory". */
const ENOENT = 44;

/**
 * Makes an engine find every shipped extension: a file PostgreSQL looks for in the extension or
 * library directory and does not find is taken, with the rest of its bundle, from `bundles`; a
 * listing of the extension directory first gets every bundle's control file.
 */
export function loadExtensionsOnDemand(module: unknown, bundles: ExtensionBundles = shippedBundles()): void {
  const { FS, WASM_PREFIX: prefix } = (module ?? {}) as { FS?: Partial<LoaderFS>; WASM_PREFIX?: string };
  const missing = ['lookupNode', 'readdir', 'getPath', 'mkdirTree', 'writeFile'].filter(
    (name) => typeof FS?.[name as keyof LoaderFS] !== 'function',
  );
  if (!FS || typeof prefix !== 'string' || missing.length > 0) {
    throw new EngineInternalsChangedError(
      `the engine's file system (${missing.join(', ') || 'WASM_PREFIX'})`,
    );
  }
  const fs = FS as LoaderFS;
  const directories = new Map([
    [`${prefix}/${EXTENSION_DIR}`, EXTENSION_DIR],
    [`${prefix}/${LIBRARY_DIR}`, LIBRARY_DIR],
  ]);
  // The bundle being written now: its own new files are missing until written. Nothing else is
  // remembered, since a snapshot restore takes written files away again.
  let writing: string | null = null;
  const write = (file: string, data: Buffer) => {
    const target = `${prefix}/${file}`;
    fs.mkdirTree(path.posix.dirname(target));
    fs.writeFile(target, data);
  };

  const lookupNode = fs.lookupNode;
  fs.lookupNode = (parent, name) => {
    try {
      return lookupNode(parent, name);
    } catch (error) {
      if ((error as { errno?: number })?.errno !== ENOENT || writing) throw error;
      const directory = directories.get(fs.getPath(parent));
      const bundle = directory && bundles.bundleOf(`${directory}/${name}`);
      if (!bundle) throw error;
      writing = bundle;
      try {
        for (const [file, data] of bundles.files(bundle)) write(file, data);
      } finally {
        writing = null;
      }
      return lookupNode(parent, name);
    }
  };
  const readdir = fs.readdir;
  const extensionDir = `${prefix}/${EXTENSION_DIR}`;
  fs.readdir = (dir) => {
    if (path.posix.normalize(dir) === extensionDir) {
      for (const [file, data] of bundles.controlFiles()) write(file, data);
    }
    return readdir(dir);
  };
}
