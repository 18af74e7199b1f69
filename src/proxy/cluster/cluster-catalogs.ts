import {
  type ClusterDatabase,
  changesBetween,
  databasesOf,
  type SharedCatalogs,
  withChanges,
  withOwnDependencies,
} from './shared-catalogs.js';

/** PostgreSQL's FirstNormalObjectId: oids below it are initdb's own. */
const FIRST_USER_OID = 16384;

/**
 * The cluster's own copy of the shared catalogs (see shared-catalogs.ts): what every engine is
 * brought to. Each change merged makes a new generation; an engine that applied an older one is
 * behind.
 */
export class ClusterCatalogs {
  private catalogs: SharedCatalogs = new Map();
  private byName = new Map<string, ClusterDatabase>();
  private userRoles = false;
  private generationNumber = 0;
  /** Merges under way: a login waits for them, so that what a client just committed is known. */
  private readonly inFlight = new Set<Promise<unknown>>();
  /**
   * Told when a merge changed the list of databases (a database dropped or renamed, by any path):
   * the proxy's engines and copies on disk follow.
   */
  onDatabasesChanged:
    | ((before: ReadonlyMap<string, ClusterDatabase>, after: ReadonlyMap<string, ClusterDatabase>) => void)
    | null = null;

  get current(): SharedCatalogs {
    return this.catalogs;
  }

  get generation(): number {
    return this.generationNumber;
  }

  /** Whether any role is not one of PostgreSQL's own (their oids are below the first user oid). */
  get hasUserRoles(): boolean {
    return this.userRoles;
  }

  /** The databases, by name. */
  get databases(): ReadonlyMap<string, ClusterDatabase> {
    return this.byName;
  }

  /** The cluster as the main engine has it when the proxy starts (or went back to, by a reset). */
  adopt(catalogs: SharedCatalogs): void {
    this.set(catalogs);
  }

  /** What an engine changed since it had `base`; true when that changed the cluster. */
  merge(base: SharedCatalogs, now: SharedCatalogs): boolean {
    const changes = changesBetween(base, now);
    if (!changes) return false;
    const before = this.byName;
    this.set(withChanges(this.catalogs, changes));
    if (changes.get('pg_database')?.size) this.onDatabasesChanged?.(before, this.byName);
    return true;
  }

  /**
   * Takes database `oid`'s rows of pg_shdepend as its engine has them now (see
   * withOwnDependencies); true when that changed the cluster.
   */
  takeDependencies(now: SharedCatalogs, oid: number): boolean {
    const taken = withOwnDependencies(this.catalogs, now, oid);
    if (taken) this.set(taken);
    return taken !== null;
  }

  /** Whether `catalogs` read the same as the cluster's. */
  matches(catalogs: SharedCatalogs): boolean {
    return changesBetween(catalogs, this.catalogs) === null;
  }

  /** Keeps `work` in the merges a login waits for. */
  track<T>(work: Promise<T>): Promise<T> {
    this.inFlight.add(work);
    void work.then(
      () => this.inFlight.delete(work),
      () => this.inFlight.delete(work),
    );
    return work;
  }

  /** A merge to come (a unit's, once it has finished): logins wait until `done` is called. */
  expect(): () => void {
    let done!: () => void;
    void this.track(new Promise<void>((resolve) => (done = resolve)));
    return done;
  }

  /** Whether a merge is under way. */
  get merging(): boolean {
    return this.inFlight.size > 0;
  }

  /** Resolves once no merge is under way (also those the merges under way now start). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private set(catalogs: SharedCatalogs): void {
    this.catalogs = catalogs;
    this.byName = databasesOf(catalogs);
    this.userRoles = [...(catalogs.get('pg_authid')?.keys() ?? [])].some(
      (oid) => Number(oid) >= FIRST_USER_OID,
    );
    this.generationNumber++;
  }
}
