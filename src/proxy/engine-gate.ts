import type { PGlite } from '@electric-sql/pglite';
import { EngineInternalsChangedError } from '../errors.js';
import type { InteractiveRuntime } from '../runtime/interactive-runtime.js';

/** The engine's blob hooks behind `COPY ... FROM '/dev/blob'` (declared, not documented). */
interface BlobHooks {
  _handleBlob(blob?: Blob): Promise<void>;
  _cleanupBlob(): Promise<void>;
  _getWrittenBlob(): Promise<Blob | undefined>;
}

/**
 * The proxy's only way to the engine. Calls go through the runtime, so a call that kills the
 * engine rejects with EngineCrashedError and the runtime restarts it for the next call.
 */
export class EngineGate {
  constructor(readonly runtime: InteractiveRuntime) {}

  /** Synchronous when the engine is free, which is the usual case between clients' units. */
  exec(bytes: Uint8Array): Uint8Array | Promise<Uint8Array> {
    return this.runtime.execWireNow(bytes) ?? this.runtime.execInteractive(bytes);
  }

  /** Runs `bytes` with `blob` attached to the engine's /dev/blob device (a client's COPY data). */
  async execWithBlob(bytes: Uint8Array, blob: Blob): Promise<Uint8Array> {
    const hooks = blobHooks(await this.runtime.pglite());
    await hooks._handleBlob(blob);
    try {
      return await this.runtime.execInteractive(bytes);
    } finally {
      await hooks._cleanupBlob();
      await hooks._getWrittenBlob();
    }
  }

  /** Current values of the settings Postgres reports to clients in ParameterStatus. */
  async reportedSettings(): Promise<Map<string, string>> {
    const engine = await this.runtime.pglite();
    const names = REPORTED_SETTINGS.map((name) => `current_setting('${name}', true)`).join(', ');
    const result = await engine.query<Record<string, string | null>>(`SELECT ${names}`, [], {
      rowMode: 'array',
    });
    const row = (result.rows[0] ?? []) as unknown as Array<string | null>;
    const settings = new Map<string, string>();
    REPORTED_SETTINGS.forEach((name, index) => {
      const value = row[index];
      if (value !== null && value !== undefined) settings.set(name, value);
    });
    return settings;
  }
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

export function blobHooks(engine: PGlite): BlobHooks {
  const candidate = engine as unknown as Partial<BlobHooks>;
  if (
    typeof candidate._handleBlob !== 'function' ||
    typeof candidate._cleanupBlob !== 'function' ||
    typeof candidate._getWrittenBlob !== 'function'
  ) {
    throw new EngineInternalsChangedError('the /dev/blob hooks (_handleBlob, _cleanupBlob, _getWrittenBlob)');
  }
  return candidate as BlobHooks;
}
