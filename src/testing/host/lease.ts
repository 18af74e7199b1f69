import type { ResetReport } from '../../runtime/memory-engine.js';
import { ControlClient } from './control-channel.js';
import type { LeaseReply } from './engine-host.js';

/** A test file's database, leased from the engine host: clients reach it at `connectionString`. */
export interface LeasedDatabase {
  readonly connectionString: string;
  /** DATABASE_URL and the libpq PG* variables pointing at this database. */
  readonly env: Record<string, string>;
  /** Opens the test's outer transaction (isolation 'transaction'). */
  beginTest(): Promise<void>;
  /** Ends it: rolled back, or committed to keep a failing test's data. */
  endTest(outcome?: 'rollback' | 'commit'): Promise<void>;
  /** Puts the database back exactly to the template state. */
  reset(): Promise<ResetReport>;
  /** Raw wire access to the engine: a SQL string, or frontend message bytes. */
  execInteractive(input: string | Uint8Array): Promise<Uint8Array>;
  /** Writes the database as it is now to `dir`, a root `pglite-oxide serve --data` reopens. */
  keep(dir: string): Promise<string>;
  /** Gives the database back to the host, which resets it for the next test file. */
  release(): Promise<void>;
}

/** How long test control waits for a statement left running before the host cancels it. */
const LEFT_STATEMENT_GRACE_MS = 1_000;

/** Leases a database from the engine host at `hostAddress` (see `startEngineHost`). */
export async function leaseDatabase(hostAddress: string): Promise<LeasedDatabase> {
  const host = await ControlClient.connect(hostAddress);
  let control: ControlClient;
  let reply: LeaseReply;
  try {
    reply = await host.call<LeaseReply>('lease');
    control = await ControlClient.connect(reply.info.control);
  } catch (error) {
    host.close();
    throw error;
  }
  let released: Promise<void> | undefined;
  /**
   * Test control waits behind a statement the test left running (a test that timed out in the
   * middle of one). When it waits long, the host cancels that statement, which then ends with
   * 57014 for the client that ran it, and the next test starts.
   */
  const testControl = (op: string, args?: Record<string, unknown>): Promise<void> => {
    const timer = setTimeout(
      () => void host.call('cancel', { leaseId: reply.leaseId }).catch(() => {}),
      LEFT_STATEMENT_GRACE_MS,
    );
    return control.call<void>(op, args).finally(() => clearTimeout(timer));
  };
  return {
    connectionString: reply.info.connectionString,
    env: reply.info.env,
    beginTest: () => testControl('beginTest'),
    endTest: (outcome = 'rollback') => testControl('endTest', { outcome }),
    reset: () => control.call<ResetReport>('reset'),
    async execInteractive(input) {
      const args =
        typeof input === 'string' ? { sql: input } : { bytes: Buffer.from(input).toString('base64') };
      return new Uint8Array(Buffer.from(await control.call<string>('exec', args), 'base64'));
    },
    keep: (dir) => control.call<string>('keep', { dir }),
    release() {
      released ??= host.call<void>('release', { leaseId: reply.leaseId }).finally(() => {
        control.close();
        host.close();
      });
      return released;
    },
  };
}
