import { serialize } from 'pg-protocol';
import { EngineCrashedError } from '../../errors.js';
import { scanBackend } from '../../protocol/backend-scanner.js';
import type { ClientTable } from '../../runtime/client-table.js';
import type { ClientIdentity } from '../../runtime/engine-identity.js';
import type { InteractiveRuntime } from '../../runtime/interactive-runtime.js';

/** The proxy's only way to the engine, wherever the engine runs. */
export interface EngineGate {
  /**
   * Raw frontend messages in, the engine's raw answer out; synchronous when it can be. `as`: the
   * client the call runs for: PostgreSQL takes its login role for the session's authenticated
   * user in its checks (SET SESSION AUTHORIZATION), and pg_backend_pid() is its pid. By default
   * the engine's own session.
   */
  exec(bytes: Uint8Array, as?: ClientIdentity): Uint8Array | Promise<Uint8Array>;
  /** Runs `bytes` with `data` attached to the engine's /dev/blob device (a client's COPY data). */
  execWithBlob(bytes: Uint8Array, data: Uint8Array, as?: ClientIdentity): Promise<Uint8Array>;
  /** Shares the proxy's client table with the engine, for pg_cancel_backend and pg_terminate_backend by pid. */
  attachClients(table: ClientTable): void;
  /** Whether calls can run `as` a client's login role; when not, only the engine's superusers may log in. */
  enforcesLoginRoles(): boolean | Promise<boolean>;
  /** Asks the statement running now to stop with 57014; false when it cannot be asked. */
  cancelRunning(): boolean;
}

/**
 * An engine in this thread. Calls go through the runtime, so a call that kills the engine rejects
 * with EngineCrashedError and the runtime restarts it for the next call. A statement runs on
 * the thread that serves the clients: until it ends, nothing else is answered.
 */
export class RuntimeGate implements EngineGate {
  constructor(readonly runtime: InteractiveRuntime) {}

  /** Synchronous when the engine is free, which is the usual case between clients' units. */
  exec(bytes: Uint8Array, as?: ClientIdentity): Uint8Array | Promise<Uint8Array> {
    return this.runtime.execWireNow(bytes, as) ?? this.runtime.execInteractive(bytes, as);
  }

  execWithBlob(bytes: Uint8Array, data: Uint8Array, as?: ClientIdentity): Promise<Uint8Array> {
    return this.runtime.execWithBlob(bytes, new Blob([data as Uint8Array<ArrayBuffer>]), as);
  }

  attachClients(table: ClientTable): void {
    this.runtime.clients.table = table;
  }

  enforcesLoginRoles(): Promise<boolean> {
    return this.runtime.enforcesLoginRoles();
  }

  cancelRunning(): boolean {
    // This thread is busy while a statement runs: nothing here can ask it to stop.
    return false;
  }
}

/** Current values of the settings Postgres reports to clients in ParameterStatus. */
export async function reportedSettings(gate: EngineGate): Promise<Map<string, string>> {
  const pairs = REPORTED_SETTINGS.map((name) => `'${name}', current_setting('${name}', true)`).join(', ');
  const output = await gate.exec(serialize.query(`SELECT json_build_object(${pairs})::text`));
  const summary = scanBackend(output);
  if (summary.errors > 0 || summary.firstValue === null) {
    throw new EngineCrashedError(
      `the engine did not report its settings (SQLSTATE ${summary.firstErrorCode})`,
    );
  }
  const settings = new Map<string, string>();
  for (const [name, value] of Object.entries(
    JSON.parse(summary.firstValue) as Record<string, string | null>,
  )) {
    if (value !== null) settings.set(name, value);
  }
  return settings;
}

/** The settings a PostgreSQL 17 server reports (GUC_REPORT), under their canonical names. */
export const REPORTED_SETTINGS = [
  'server_version',
  'server_encoding',
  'client_encoding',
  'application_name',
  'DateStyle',
  'IntervalStyle',
  'TimeZone',
  'integer_datetimes',
  'standard_conforming_strings',
  'is_superuser',
  'session_authorization',
  'default_transaction_read_only',
  'in_hot_standby',
  'scram_iterations',
] as const;
