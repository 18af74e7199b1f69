import { serialize } from 'pg-protocol';
import { dollarQuote, quoteIdent } from '../../protocol/sql-quote.js';
import type { CopyInPlan } from '../sql/statement-effects.js';

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

  /** The data, joined once (the chunks are let go). */
  data(): Uint8Array {
    const data = Buffer.concat(this.chunks);
    this.chunks.length = 0;
    return data;
  }

  /** The frames that make the engine load the blob, in the protocol the client used. */
  loadFrames(): Buffer[] {
    return statementFrames(this.plan.loadSql, this.extended);
  }
}

/**
 * Frames that make the engine fail with `code` and `message`, for an error the proxy finds itself
 * (a COPY the client aborted, a portal that already ran), so the transaction state that follows
 * is the engine's own (an aborted transaction block, and 25P02 for anything in one).
 */
export function errorFrames(message: string, extended: boolean, code: string): Buffer[] {
  const body = `BEGIN RAISE EXCEPTION USING ERRCODE = '${code}', MESSAGE = ${dollarQuote(message)}; END`;
  return statementFrames(`DO ${dollarQuote(body)}`, extended);
}

function statementFrames(sql: string, extended: boolean): Buffer[] {
  if (!extended) return [serialize.query(sql)];
  // No Sync: the client's own Sync ends this extended exchange, as it would with Postgres.
  return [serialize.parse({ text: sql }), serialize.bind({}), serialize.execute({})];
}

/**
 * Frames that ask the engine how many columns a COPY FROM STDIN without a column list reads, and
 * fail as Postgres fails such a COPY before it starts (no table 42P01, aborted transaction 25P02).
 */
export function copyColumnsProbe(plan: CopyInPlan): Buffer {
  const relation = dollarQuote(plan.relation.map(quoteIdent).join('.'));
  const count = plan.columns > 0 ? String(plan.columns) : 'count(*)::int';
  const sql =
    `SELECT ${count} FROM pg_catalog.pg_attribute WHERE attrelid = ${relation}::pg_catalog.regclass ` +
    "AND attnum > 0 AND NOT attisdropped AND attgenerated = ''";
  return Buffer.concat(statementFrames(sql, true));
}

/** ParseComplete and BindComplete of the load frames: the client did not send those messages. */
export const LOAD_ACKNOWLEDGEMENTS = new Set([0x31, 0x32]);
