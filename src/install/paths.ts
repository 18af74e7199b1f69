import path from 'node:path';

/** Where one installation lives: `pgroot` holds the runtime, `pgdata` the database cluster. */
export class PglitePaths {
  constructor(
    readonly pgroot: string,
    readonly pgdata: string,
  ) {}

  /** The standard layout under a root: runtime in `<root>/pglite`, cluster in `<root>/pglite/base`. */
  static withRoot(root: string): PglitePaths {
    const pgroot = path.resolve(root);
    return new PglitePaths(pgroot, path.join(pgroot, 'pglite', 'base'));
  }

  /** `<pgroot>/pglite`: bin, share, tmp and the manifest. */
  get runtimeDir(): string {
    return path.join(this.pgroot, 'pglite');
  }

  get binDir(): string {
    return path.join(this.runtimeDir, 'bin');
  }

  get shareDir(): string {
    return path.join(this.runtimeDir, 'share');
  }

  get tmpDir(): string {
    return path.join(this.runtimeDir, 'tmp');
  }

  get manifestPath(): string {
    return path.join(this.runtimeDir, 'manifest.json');
  }
}
