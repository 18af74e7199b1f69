import fs from 'node:fs/promises';
import path from 'node:path';

// Compiling pglite.wasm costs ~65 ms and its lazily compiled functions are kept with the module:
// every engine a process opens from the same file shares one compiled module.
const modules = new Map<string, Promise<WebAssembly.Module>>();
const bundles = new Map<string, Promise<Blob>>();

export function compiledModule(file: string): Promise<WebAssembly.Module> {
  const key = path.resolve(file);
  let module = modules.get(key);
  if (!module) {
    module = fs.readFile(key).then((bytes) => WebAssembly.compile(bytes));
    module.catch(() => modules.delete(key));
    modules.set(key, module);
  }
  return module;
}

/** The engine's filesystem bundle (share/, lib/ of the guest), read once per process. */
export function fsBundle(file: string): Promise<Blob> {
  const key = path.resolve(file);
  let bundle = bundles.get(key);
  if (!bundle) {
    bundle = fs.readFile(key).then((bytes) => new Blob([bytes]));
    bundle.catch(() => bundles.delete(key));
    bundles.set(key, bundle);
  }
  return bundle;
}

/**
 * Seeds this thread's cache with a module compiled elsewhere: a WebAssembly.Module posted to a
 * worker thread shares its compiled code, so each engine-host worker skips the compile.
 */
export function adoptCompiledModule(file: string, module: WebAssembly.Module): void {
  modules.set(path.resolve(file), Promise.resolve(module));
}

/** Seeds this thread's cache with the engine's filesystem bundle read by another thread. */
export function adoptFsBundle(file: string, bundle: Blob): void {
  bundles.set(path.resolve(file), Promise.resolve(bundle));
}
