// The databases of a proxy other than the one it was started on: each served by an engine of its
// own, started when a client first asks for it, and following what the cluster's list of
// databases says (CREATE DATABASE copies a template's cluster; a drop or rename by any path takes
// the engine and its copy on disk along). The main engine keeps the cluster's catalogs for the
// next start, and is brought to them as soon as it is free.
import fs from 'node:fs/promises';
import path from 'node:path';
import { serialize } from 'pg-protocol';
import { readRows } from '../../protocol/backend-rows.js';
import type { DatabaseOpener } from '../database/database-engines.js';
import type { EngineGate } from '../database/engine-gate.js';
import { EngineWaitError } from '../database/engine-scheduler.js';
import {
  type DatabaseClient,
  type DatabaseRefusal,
  type ProxyFront,
  ServedDatabase,
  waitUntil,
  withTimeout,
} from '../database/served-database.js';
import { applyFrames, type ClusterDatabase } from './shared-catalogs.js';

/** How long DROP DATABASE and a busy template wait for clients that are leaving, as PostgreSQL. */
const DROP_WAIT_MS = 5_000;

export class ClusterDatabases {
  /** Databases other than the main one, by name: started, or starting. */
  private readonly others = new Map<string, Promise<ServedDatabase | DatabaseRefusal>>();
  /** The main engine being brought to the cluster's catalogs (see clusterChanged). */
  private mainCatchingUp: Promise<void> | null = null;
  /** The main engine is being closed: it takes no more of the cluster's catalogs. */
  private mainClosing = false;
  /** The oid range the next database's engine counts in (the main engine's is 0). */
  private nextOidRange = 1;

  constructor(
    private readonly front: ProxyFront,
    private readonly main: ServedDatabase,
    /** Starts the other databases' engines; null when the proxy serves its main database only. */
    private readonly opener: DatabaseOpener | null,
  ) {
    front.cluster.onDatabasesChanged = (before, after) => this.databasesChanged(before, after);
  }

  async database(name: string, use: { template?: boolean } = {}): Promise<ServedDatabase | DatabaseRefusal> {
    if (name === this.main.database) return this.main;
    // What a client just committed (CREATE, DROP, RENAME, ALTER DATABASE) is known first.
    await this.front.cluster.settled();
    const listed = this.front.cluster.databases.get(name);
    if (!listed) return { code: '3D000', message: `database "${name}" does not exist` };
    // A template need not accept connections: its engine is the proxy's, not a client's.
    if (!listed.allowConnections && !use.template) {
      return { code: '55000', message: `database "${name}" is not currently accepting connections` };
    }
    let database = this.others.get(name);
    if (!database) {
      database = this.openOther(name);
      this.others.set(name, database);
      // A refusal is not kept: the database may be created meanwhile.
      void database.then((opened) => {
        if (!(opened instanceof ServedDatabase)) this.others.delete(name);
      });
    }
    return database;
  }

  private async openOther(name: string): Promise<ServedDatabase | DatabaseRefusal> {
    if (!this.opener) {
      return {
        code: '0A000',
        message: `database "${name}" cannot be served here: this proxy serves only database "${this.main.database}"`,
      };
    }
    try {
      const oidRange = this.nextOidRange++;
      const engine = await this.opener.open(name, (work) => this.main.whileHeld(work), oidRange);
      engine.gate.attachClients(this.front.clients);
      const database = new ServedDatabase(engine, this.front, name, { main: false, testTransactions: false });
      await database.start();
      return database;
    } catch (error) {
      this.front.warn(`database "${name}" could not start: ${(error as Error).message}`);
      return {
        code: '57P03',
        message: `database "${name}" could not start: ${(error as Error).message}`,
      };
    }
  }

  /**
   * Brings the main engine to the cluster's catalogs as soon as it is free between transactions:
   * its cluster is where a restart finds them. One that stays busy follows at its next turn.
   */
  clusterChanged(): void {
    // While the proxy closes too: a change merged then is what the next start must find.
    if (this.mainCatchingUp || this.mainClosing) return;
    const generation = this.front.cluster.generation;
    this.mainCatchingUp = this.main
      .whileHeld(() => (this.main.behindCluster ? this.main.syncCatalogs() : Promise.resolve()))
      .catch((error: unknown) => {
        if (!(error instanceof EngineWaitError))
          this.front.warn(
            `the main database could not take the cluster's catalogs: ${(error as Error).message}`,
          );
      })
      .finally(() => {
        this.mainCatchingUp = null;
        // A change merged meanwhile is followed too.
        if (this.front.cluster.generation !== generation) this.clusterChanged();
      });
  }

  async templateSource(
    name: string,
    client: DatabaseClient,
  ): Promise<ServedDatabase | DatabaseRefusal | null> {
    const source = await this.database(name, { template: true });
    // A template that does not exist: the client's own engine says so, as PostgreSQL does.
    if (!(source instanceof ServedDatabase)) return source.code === '3D000' ? null : source;
    const others = () => source.otherClients(client).length;
    // As PostgreSQL, which gives the sessions of clients that just disconnected 5 s to end.
    if (others() > 0) await waitUntil(() => others() === 0, DROP_WAIT_MS);
    const count = others();
    if (count === 0) return source;
    return {
      code: '55006',
      message: `source database "${name}" is being accessed by other users`,
      detail: `There ${count === 1 ? 'is 1 other session' : `are ${count} other sessions`} using the database.`,
    };
  }

  async copyCreated(source: ServedDatabase, name: string): Promise<void> {
    const files = source.engine.files;
    if (!this.opener || !files) throw new Error('this proxy cannot copy databases');
    const found = readRows(
      await source.gate.exec(
        Buffer.concat([
          serialize.parse({
            text:
              'SELECT oid FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) ' +
              "ANY(ARRAY[$1, 'template0']::pg_catalog.name[])",
          }),
          serialize.bind({ values: [name] }),
          serialize.execute({}),
          serialize.sync(),
          serialize.query('CHECKPOINT'),
        ]),
      ),
    );
    if (found.error) throw new Error(`reading database "${name}" failed: ${found.error.message}`);
    // The copy keeps the new database and template0 (which CREATE DATABASE may copy from there):
    // the other databases of the source's cluster are served elsewhere.
    const kept = new Set(found.rows.map(([oid]) => oid));
    const keep = (relative: string) => {
      const database = /^base[/\\](\d+)/.exec(relative);
      return !database || kept.has(database[1]!);
    };
    await this.opener.create(name, (to) => files.copy(to, keep));
    const created = found.rows
      .map(([oid]) => oid)
      .find((oid) => oid !== String(this.front.cluster.databases.get('template0')?.oid));
    if (files.local && created)
      await fs.rm(path.join(files.local, 'base', created), { recursive: true, force: true });
  }

  /**
   * Whether `name` may be dropped or renamed now. As PostgreSQL: not while clients are connected
   * to it, unless `force`, which ends them first. The main database never: the proxy runs on it.
   */
  async whenUnused(name: string, force: boolean): Promise<DatabaseRefusal | null> {
    if (name === this.main.database) {
      return {
        code: '55006',
        message: `database "${name}" is being accessed by other users`,
        detail: 'It is the database this proxy was started on, which stays while the proxy runs.',
      };
    }
    const opened = await this.others.get(name);
    if (!(opened instanceof ServedDatabase) || opened.sessions.size === 0) return null;
    // As PostgreSQL, which gives the sessions of clients that just disconnected 5 s to end.
    if (!force) await waitUntil(() => opened.sessions.size === 0, DROP_WAIT_MS);
    if (opened.sessions.size === 0) return null;
    if (force) {
      await opened.close('57P01', 'terminating connection due to administrator command');
      this.others.delete(name);
      return null;
    }
    const count = opened.sessions.size;
    return {
      code: '55006',
      message: `database "${name}" is being accessed by other users`,
      detail: `There ${count === 1 ? 'is 1 other session' : `are ${count} other sessions`} using the database.`,
    };
  }

  /**
   * A merge changed the cluster's list of databases. A database dropped takes its engine and its
   * copy on disk along; one renamed has its engine closed and its copy moved to the new name
   * (its own catalogs renamed first, so that it opens under that name). Logins wait for it.
   */
  databasesChanged(
    before: ReadonlyMap<string, ClusterDatabase>,
    after: ReadonlyMap<string, ClusterDatabase>,
  ): void {
    const nameOf = new Map([...after].map(([name, { oid }]) => [oid, name]));
    for (const [name, { oid }] of before) {
      const now = nameOf.get(oid);
      if (now === name || name === this.main.database) continue;
      const work = now === undefined ? this.dropped(name) : this.renamed(name, now);
      void this.front.cluster.track(
        work.catch((error: unknown) =>
          this.front.warn(`database "${name}" could not follow the cluster: ${(error as Error).message}`),
        ),
      );
    }
  }

  private async dropped(name: string): Promise<void> {
    const opening = this.others.get(name);
    this.others.delete(name);
    const opened = await opening;
    if (opened instanceof ServedDatabase)
      await opened.close('57P01', 'terminating connection due to administrator command');
    await this.opener?.dropped(name);
  }

  private async renamed(from: string, to: string): Promise<void> {
    const opening = this.others.get(from);
    this.others.delete(from);
    const opened = await opening;
    if (!this.opener) return;
    const renameInside = async (gate: EngineGate) => {
      const applied = readRows(await gate.exec(applyFrames(this.front.cluster.current)));
      if (applied.error) throw new Error(`renaming it in its own catalogs failed: ${applied.error.message}`);
    };
    if (opened instanceof ServedDatabase) {
      await opened.whileHeld(renameInside);
      await opened.close('57P01', 'terminating connection due to administrator command');
    } else {
      const engine = await this.opener.open(from, (work) => this.main.whileHeld(work), this.nextOidRange++);
      try {
        await renameInside(engine.gate);
      } finally {
        await engine.close?.();
      }
    }
    await this.opener.renamed(from, to);
  }

  /** Closes the engines of the databases other than the main one; their clients are ended. */
  async closeAll(message: string): Promise<void> {
    const others = [...this.others.values()];
    this.others.clear();
    await Promise.all(
      others.map(async (opening) => {
        const opened = await opening;
        if (opened instanceof ServedDatabase) await opened.close('57P01', message);
      }),
    );
  }

  /**
   * Before the proxy closes: what was merged reaches the main engine's catalogs (what the next
   * start finds of the cluster), and a database renamed has its copy moved.
   */
  async settleForShutdown(): Promise<void> {
    await withTimeout(this.front.cluster.settled(), 2_000);
    if (this.mainCatchingUp) await withTimeout(this.mainCatchingUp, 2_000);
    this.mainClosing = true;
  }

  /** Copies made for this run only go (a database made again starts afresh). */
  async removeCopies(): Promise<void> {
    await this.opener?.close();
  }
}
