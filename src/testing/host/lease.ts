import type { ResetReport } from '../../runtime/memory-engine.js';
import { noticeLongWait } from '../../wait-notice.js';
import { ControlClient } from './control-channel.js';
import type { DatabaseCalls, HostCalls, LeaseReply, RescueOutcome } from './messages.js';

/** A test file's database, leased from the engine host: clients reach it at `connectionString`. */
export interface LeasedDatabase {
  readonly connectionString: string;
  /** DATABASE_URL and the libpq PG* variables pointing at this database. */
  readonly env: Record<string, string>;
  /** Opens the test's outer transaction (isolation 'transaction'). */
  beginTest(): Promise<void>;
  /** Ends it: rolled back, or committed to keep a failing test's data. Resolves with the clients it left in a transaction. */
  endTest(outcome?: 'rollback' | 'commit'): Promise<string[]>;
  /** Puts the database back exactly to the template state. */
  reset(): Promise<ResetReport>;
  /** Raw wire access to the engine: a SQL string, or frontend message bytes. */
  execInteractive(input: string | Uint8Array): Promise<Uint8Array>;
  /** Writes the database as it is now to `dir`, a root `pglite-oxide serve --data` reopens. */
  keep(dir: string): Promise<string>;
  /**
   * The clients still connected once those leaving had `graceMs` to go, described. `label` names
   * the test file in what those clients are told when the database closes at the end of the run.
   */
  clientsLeft(graceMs: number, label: string): Promise<string[]>;
  /** Gives the database back to the host, which resets it for the next test file. */
  release(): Promise<void>;
}

/** A promise that never settles: a race entry that only one outcome resolves. */
const NEVER = new Promise<never>(() => {});

/** How long test control waits for a statement left running before the host cancels it. */
const LEFT_STATEMENT_GRACE_MS = 1_000;

/** Leases a database from the engine host at `hostAddress` (see `startEngineHost`). */
export async function leaseDatabase(hostAddress: string): Promise<LeasedDatabase> {
  const host = await ControlClient.connect<HostCalls>(hostAddress);
  let control: ControlClient<DatabaseCalls>;
  let reply: LeaseReply;
  try {
    reply = await noticeLongWait(
      host.call('lease'),
      () => `this test file waits for a database from the engine host at ${hostAddress}`,
    );
    control = await ControlClient.connect<DatabaseCalls>(reply.info.control);
  } catch (error) {
    host.close();
    throw error;
  }
  let released: Promise<void> | undefined;
  /**
   * Test control waits behind a statement the test left running (a test that timed out in the
   * middle of one). When it waits long, the host asks that statement to stop (57014 for the
   * client that ran it) and, when it does not, replaces the database with a fresh one from the
   * template on the same ports; control then goes on with the new one.
   */
  // Calls made on one control connection all see its database replaced; one reconnects.
  let generation = 0;
  let reconnecting: Promise<void> | null = null;
  const reconnect = (seen: number): Promise<void> => {
    if (generation !== seen) return Promise.resolve();
    reconnecting ??= (async () => {
      control.close();
      control = await ControlClient.connect<DatabaseCalls>(reply.info.control);
      generation++;
    })().finally(() => {
      reconnecting = null;
    });
    return reconnecting;
  };
  // One rescue for all the calls that wait behind the same statement.
  let rescuing: { generation: number; outcome: Promise<RescueOutcome | 'failed'> } | null = null;
  const rescueFor = (seen: number): Promise<RescueOutcome | 'failed'> => {
    if (rescuing?.generation !== seen) {
      rescuing = {
        generation: seen,
        outcome: host.call('cancel', { leaseId: reply.leaseId }).catch(() => 'failed' as const),
      };
    }
    return rescuing.outcome;
  };
  const testControl = async <T>(call: () => Promise<T>, beginsTest: boolean): Promise<T | undefined> => {
    const seen = generation;
    const answered: Promise<{ value?: T; error?: unknown }> = call().then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
    let rescue: Promise<RescueOutcome | 'failed'> | undefined;
    let timer: NodeJS.Timeout | undefined;
    const rescued = new Promise<RescueOutcome | 'failed'>((resolve) => {
      timer = setTimeout(() => {
        rescue = rescueFor(seen);
        void rescue.then(resolve);
      }, LEFT_STATEMENT_GRACE_MS);
    });
    const replaced = rescued.then((outcome) => (outcome === 'replaced' ? outcome : NEVER));
    try {
      const first = await Promise.race([answered, replaced]);
      if (first !== 'replaced') {
        if (first.error === undefined) return first.value;
        // The call failed: the old database's thread may have ended under it as the host replaced it.
        if (!rescue || (await rescue) !== 'replaced') throw first.error;
      }
      await reconnect(seen);
      // A fresh database has no test open: a BEGIN is still needed, a rollback is not.
      if (beginsTest) await control.call('beginTest');
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    connectionString: reply.info.connectionString,
    env: reply.info.env,
    beginTest: async () => {
      await testControl(() => control.call('beginTest'), true);
    },
    endTest: async (outcome = 'rollback') =>
      (await testControl(() => control.call('endTest', { outcome }), false)) ?? [],
    reset: () => control.call('reset'),
    async execInteractive(input) {
      const args =
        typeof input === 'string' ? { sql: input } : { bytes: Buffer.from(input).toString('base64') };
      return new Uint8Array(Buffer.from(await control.call('exec', args), 'base64'));
    },
    keep: (dir) => control.call('keep', { dir }),
    clientsLeft: (graceMs, label) => control.call('clientsLeft', { graceMs, label }),
    release() {
      released ??= host.call('release', { leaseId: reply.leaseId }).finally(() => {
        control.close();
        host.close();
      });
      return released;
    },
  };
}
