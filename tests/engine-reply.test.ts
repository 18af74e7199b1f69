import { describe, expect, it } from 'vitest';
import { scanBackend } from '../src/protocol/backend-scanner.js';
import {
  BIND_COMPLETE,
  commandComplete,
  errorResponse,
  notificationResponse,
  PARSE_COMPLETE,
  readyForQuery,
} from '../src/protocol/backend-writer.js';
import { clientReply, type ReplyShape } from '../src/proxy/session/engine-reply.js';

const READY: ReplyShape = { ends: 'ready', clientStatus: null, explainTransactionBlock: false };

function reply(parts: Buffer[], shape: ReplyShape): Buffer {
  const output = Buffer.concat(parts);
  return Buffer.from(clientReply(output, scanBackend(output), shape));
}

const failed = errorResponse({ severity: 'ERROR', code: '42P01', message: 'relation "x" does not exist' });

describe('clientReply', () => {
  it("passes a unit's output, with the transaction status the client would have on a server of its own", () => {
    const output = [commandComplete('INSERT 0 1'), readyForQuery('T')];
    expect(reply(output, READY)).toEqual(Buffer.concat(output));
    expect(reply(output, { ...READY, clientStatus: 'I' })).toEqual(
      Buffer.concat([commandComplete('INSERT 0 1'), readyForQuery('I')]),
    );
  });

  it('keeps only the last ReadyForQuery of a unit, and cuts out notifications', () => {
    const output = [
      notificationResponse(9, 'jobs', 'new'),
      failed,
      readyForQuery('I'),
      notificationResponse(9, 'jobs', 'again'),
      readyForQuery('I'),
    ];
    expect(reply(output, READY)).toEqual(Buffer.concat([failed, readyForQuery('I')]));
  });

  it('sends no ReadyForQuery while the batch goes on, nor replies to messages the client did not send', () => {
    const output = [PARSE_COMPLETE, BIND_COMPLETE, failed, readyForQuery('E')];
    const shaped = reply(output, {
      ends: 'partial',
      clientStatus: 'E',
      drop: new Set([PARSE_COMPLETE[0]!]),
      explainTransactionBlock: false,
    });
    expect(shaped).toEqual(Buffer.concat([BIND_COMPLETE, failed]));
  });

  it("explains 25001 under a test's transaction", () => {
    const refused = errorResponse({
      severity: 'ERROR',
      code: '25001',
      message: 'VACUUM cannot run inside a transaction block',
    });
    const output = [refused, readyForQuery('I')];
    expect(reply(output, READY)).toEqual(Buffer.concat(output));
    const explained = reply(output, { ...READY, explainTransactionBlock: true });
    expect(explained.toString()).toContain("Use isolation 'reset' for tests that need it");
    expect(explained.subarray(explained.length - 6)).toEqual(readyForQuery('I'));
  });
});
