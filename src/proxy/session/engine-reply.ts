import { type BackendSummary, withoutRanges, withoutTypes } from '../../protocol/backend-scanner.js';
import type { TransactionStatus } from '../../protocol/backend-writer.js';
import { explainTransactionBlockErrors } from '../sql/test-transaction.js';

const READY_FOR_QUERY = 0x5a;

export interface ReplyShape {
  /**
   * `ready`: the unit ended with the client's Sync or Query. `partial`: the client's batch goes
   * on, so no ReadyForQuery is due (the engine sends one at the end of every call after an error).
   */
  ends: 'ready' | 'partial';
  /** The transaction status the client gets in its ReadyForQuery (a ready unit's). */
  clientStatus: TransactionStatus | null;
  /** Message types the client did not ask for (replies to the proxy's own messages). */
  drop?: ReadonlySet<number>;
  /** Under a test's transaction: 25001 errors get the hint that explains them. */
  explainTransactionBlock: boolean;
}

/**
 * What a client gets of the engine's output for its unit: as a server of its own would answer.
 * Notifications are cut out (the hub routes them), at most one ReadyForQuery is kept, with the
 * client's own transaction status. The status byte is rewritten in `output` itself.
 */
export function clientReply(output: Uint8Array, summary: BackendSummary, shape: ReplyShape): Uint8Array {
  let cut: Array<{ start: number; end: number }> = summary.notifications;
  let drop = shape.drop;
  if (shape.ends === 'partial') {
    if (summary.status !== null) drop = new Set([...(drop ?? []), READY_FOR_QUERY]);
  } else if (summary.status !== null) {
    if (summary.earlierReady.length > 0) {
      cut = [...summary.earlierReady, ...cut].sort((a, b) => a.start - b.start);
    }
    if (shape.clientStatus !== null && shape.clientStatus !== summary.status) {
      output[summary.statusAt!] = shape.clientStatus.charCodeAt(0);
    }
  }
  let reply = output;
  if (cut.length > 0) reply = withoutRanges(reply, cut);
  if (drop) reply = withoutTypes(reply, drop);
  if (shape.explainTransactionBlock && summary.firstErrorCode === '25001') {
    reply = explainTransactionBlockErrors(reply);
  }
  return reply;
}
