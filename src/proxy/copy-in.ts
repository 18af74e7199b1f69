import { serialize } from 'pg-protocol';
import type { CopyInPlan } from './statement-effects.js';

/**
 * A client's COPY FROM STDIN in progress. The engine cannot take CopyData (COPY FROM STDIN
 * ends its session), so the data is collected here and loaded in one go from '/dev/blob'.
 */
export class CopyInCollector {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;

  constructor(
    readonly plan: CopyInPlan,
    /** The COPY came through Parse/Bind/Execute: the client ends the exchange with its own Sync. */
    readonly extended: boolean,
    private readonly limit: number,
  ) {}

  /** Adds one CopyData payload; false once the data passes the limit. */
  add(data: Buffer): boolean {
    this.bytes += data.length;
    if (this.bytes > this.limit) return false;
    this.chunks.push(data);
    return true;
  }

  get size(): number {
    return this.bytes;
  }

  blob(): Blob {
    return new Blob(this.chunks as Uint8Array<ArrayBuffer>[]);
  }

  /** The frames that make the engine load the blob, in the protocol the client used. */
  loadFrames(): Buffer[] {
    return statementFrames(this.plan.loadSql, this.extended);
  }
}

/**
 * Frames that make the engine fail the way Postgres fails a COPY the client aborted (57014), so
 * the transaction state that follows is the engine's own.
 */
export function copyFailureFrames(reason: string, extended: boolean, code = '57014'): Buffer[] {
  const text = `COPY from stdin failed: ${reason}`.replaceAll('\0', '').replaceAll('$pgo$', '$ pgo$');
  const sql =
    `DO $pgo$BEGIN RAISE EXCEPTION USING ERRCODE = '${code}', ` +
    `MESSAGE = '${text.replaceAll("'", "''")}'; END$pgo$`;
  return statementFrames(sql, extended);
}

function statementFrames(sql: string, extended: boolean): Buffer[] {
  if (!extended) return [serialize.query(sql)];
  // No Sync: the client's own Sync ends this extended exchange, as it would with Postgres.
  return [serialize.parse({ text: sql }), serialize.bind({}), serialize.execute({})];
}

/** ParseComplete and BindComplete of the load frames: the client did not send those messages. */
export const LOAD_ACKNOWLEDGEMENTS = new Set([0x31, 0x32]);
