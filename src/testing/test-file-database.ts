import path from 'node:path';
import { InvalidInputError } from '../errors.js';
import { checkOptionNames } from '../option-names.js';
import { type LeasedDatabase, leaseDatabase } from './host/lease.js';
import { checkIsolation, type Isolation, type KeepPolicy, makeProjectDir } from './isolation.js';

/** What a test runner's preset hands every test file (Vitest `provide`, Jest env vars). */
export interface TestFileConfig {
  /** The engine host to lease from. */
  hostAddress: string;
  isolation: Isolation;
  keep: KeepPolicy;
  /** Where kept databases go. */
  keepDir: string;
}

/** What one test file may choose for itself. */
export interface FileOptions {
  /** This file's isolation, over the run's. */
  isolation?: Isolation;
}

const FILE_OPTION_NAMES = ['isolation'];

export interface TestOutcome {
  failed: boolean;
  /** Names the kept database: the test file and the test. */
  label: string;
}

/**
 * One test file's database, leased from the engine host, and the per-test isolation around it.
 * Both presets (Vitest and Jest) are thin layers over this.
 */
export class TestFileDatabase {
  private fresh = true;
  private running = false;

  private constructor(
    private readonly leased: LeasedDatabase,
    private config: TestFileConfig,
  ) {}

  /**
   * Leases a database for one test file. `file` is what the file chose for itself (every
   * database of the run can serve every isolation), over the run's options.
   */
  static async open(config: TestFileConfig, file: FileOptions = {}): Promise<TestFileDatabase> {
    const database = new TestFileDatabase(await leaseDatabase(config.hostAddress), config);
    database.choose(file);
    return database;
  }

  /** What the file chose for itself, over the run's options: before its first test only. */
  choose(file: FileOptions): void {
    checkOptionNames(file, FILE_OPTION_NAMES, 'the options of a test file');
    if (file.isolation === undefined) return;
    if (!this.fresh) {
      throw new InvalidInputError("pglite-oxide: a test file's isolation is chosen before its first test.");
    }
    this.config = { ...this.config, isolation: checkIsolation(file.isolation) };
  }

  get connectionString(): string {
    return this.leased.connectionString;
  }

  get env(): Record<string, string> {
    return this.leased.env;
  }

  execInteractive(input: string | Uint8Array): Promise<Uint8Array> {
    return this.leased.execInteractive(input);
  }

  /** Puts the database back to the template state, whatever the isolation. */
  async reset(): Promise<void> {
    await this.leased.reset();
  }

  /** Before each test: opens its transaction, or resets what the previous test left. */
  async beforeTest(): Promise<void> {
    const { isolation } = this.config;
    if (isolation === 'none') return;
    if (this.running) {
      throw new InvalidInputError(
        `pglite-oxide: test.concurrent cannot run with isolation '${isolation}': isolating one test ` +
          "would undo another's work mid-test. Use plain test() in this file, isolation 'none', " +
          'or put the concurrent tests in separate files (files run in parallel).',
      );
    }
    this.running = true;
    if (isolation === 'transaction') await this.leased.beginTest();
    else if (!this.fresh) await this.leased.reset();
    this.fresh = false;
  }

  /**
   * After each test: rolls its transaction back. A failing test's database is kept first when
   * the policy says so; returns the message telling where, for the test output.
   */
  async afterTest(outcome: TestOutcome): Promise<string | undefined> {
    const { isolation } = this.config;
    let message: string | undefined;
    const keep = outcome.failed && this.config.keep === 'on-failure';
    if (isolation !== 'none') this.running = false;
    if (isolation === 'transaction' && !keep) {
      // Awaited, though the next call would wait for it anyway: what the test left open is said
      // while the test is still the one the runner reports on, not under the next test's name.
      reportLeftOpen(outcome.label, await this.leased.endTest('rollback'));
    } else if (isolation === 'transaction') {
      reportLeftOpen(outcome.label, await this.leased.endTest('commit'));
      message = await this.keep(outcome.label);
      // The committed test left its data: the next test must start from the template again.
      await this.leased.reset();
    } else if (keep) {
      message = await this.keep(outcome.label);
    }
    this.fresh = false;
    return message;
  }

  /**
   * Gives the database back. Clients the file left connected are named first: the host then sets
   * the database aside (closed at the end of the run) and the next file gets a fresh one.
   */
  async close(label = 'the test file'): Promise<void> {
    const left = await this.leased.clientsLeft(LEAVING_GRACE_MS, label).catch(() => []);
    if (left.length > 0) {
      const count = left.length === 1 ? '1 client' : `${left.length} clients`;
      console.warn(
        `pglite-oxide: ${label} ended with ${count} still connected: ${left.join('; ')}. ` +
          'The next file gets a fresh database; these are closed at the end of the run. ' +
          'End pools and clients in afterAll (pool.end(), client.end()).',
      );
    }
    await this.leased.release();
  }

  private async keep(label: string): Promise<string> {
    const dir = path.join(this.config.keepDir, `${slug(label)}-${Date.now()}`);
    makeProjectDir(this.config.keepDir);
    const root = await this.leased.keep(dir);
    return (
      `pglite-oxide kept the database of the failing test "${label}" at ${root}\n` +
      `  Inspect it: npx pglite-oxide serve --data ${JSON.stringify(root)}   (then psql the printed URL)`
    );
  }
}

/** How long clients that said goodbye get to leave before the file's end names those still there. */
const LEAVING_GRACE_MS = 500;

/**
 * Says which clients a test left inside a transaction of their own: their work was rolled back
 * with the test, but the client (a pool's, checked out and never released) is likely still open.
 */
function reportLeftOpen(label: string, clients: string[]): undefined {
  if (clients.length === 0) return undefined;
  const count = clients.length === 1 ? '1 client' : `${clients.length} clients`;
  console.warn(
    `pglite-oxide: the test "${label}" ended with ${count} inside a transaction (rolled back with the test): ${clients.join('; ')}. ` +
      'Commit or roll back, and release a pooled client, in a finally block.',
  );
  return undefined;
}

function slug(label: string): string {
  return (
    label
      .replace(/[^A-Za-z0-9._-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 80) || 'test'
  );
}
