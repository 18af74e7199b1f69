import { describe, expect, it } from 'vitest';
import { scanBackend, withoutRanges, withoutTypes } from '../src/protocol/backend-scanner.js';
import {
  commandComplete,
  errorResponse,
  notificationResponse,
  parameterStatus,
  readyForQuery,
} from '../src/protocol/backend-writer.js';
import { dataRowFrame } from './helpers/wire.js';

describe('scanBackend', () => {
  it('reads what the proxy needs: status, errors, notifications, settings, the last tag, the first value', () => {
    const output = Buffer.concat([
      dataRowFrame('42'),
      dataRowFrame('43'),
      commandComplete('SELECT 2'),
      notificationResponse(7, 'jobs', 'new'),
      parameterStatus('TimeZone', 'Asia/Tokyo'),
      errorResponse({ severity: 'ERROR', code: '23505', message: 'duplicate key' }),
      readyForQuery('E'),
    ]);
    const summary = scanBackend(output);
    expect(summary).toMatchObject({
      status: 'E',
      statusAt: output.length - 1,
      earlierReady: [],
      errors: 1,
      firstErrorCode: '23505',
      parameterChanges: [['TimeZone', 'Asia/Tokyo']],
      lastCommandTag: 'SELECT 2',
      firstValue: '42',
      malformed: false,
    });
    expect(summary.notifications).toEqual([expect.objectContaining({ channel: 'jobs', payload: 'new' })]);
  });

  it('keeps the place of every ReadyForQuery but the last, and says when the output is cut short', () => {
    const output = Buffer.concat([readyForQuery('I'), readyForQuery('T')]);
    expect(scanBackend(output)).toMatchObject({ status: 'T', earlierReady: [{ start: 0, end: 6 }] });
    expect(scanBackend(output.subarray(0, 9)).malformed).toBe(true);
    expect(scanBackend(Buffer.from([0x5a, 0, 0, 0, 2])).malformed).toBe(true);
  });
});

describe('cutting engine output', () => {
  it('drops byte ranges and message types', () => {
    const output = Buffer.concat([commandComplete('BEGIN'), readyForQuery('T'), commandComplete('COMMIT')]);
    const ready = scanBackend(output).statusAt! - 5;
    expect(withoutRanges(output, [{ start: ready, end: ready + 6 }])).toEqual(
      Buffer.concat([commandComplete('BEGIN'), commandComplete('COMMIT')]),
    );
    expect(withoutTypes(output, new Set([0x43]))).toEqual(readyForQuery('T'));
  });
});
