import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import type { FrontendMessage } from '../src/protocol/frontend-reader.js';
import { STANDARD_DIALECT } from '../src/protocol/sql-lexer.js';
import { ExtendedBatch } from '../src/proxy/session/extended-batch.js';
import { StatementNames } from '../src/proxy/session/statement-names.js';

/** A frontend message as the reader hands it over. */
function message(frame: Buffer): FrontendMessage {
  return { type: frame[0]!, frame, body: frame.subarray(5) };
}

function batchOf(clientId = 7): ExtendedBatch {
  return new ExtendedBatch(new StatementNames(clientId));
}

describe('ExtendedBatch', () => {
  it("gives named statements and portals the client's engine names, and passes unnamed ones as they are", () => {
    const batch = batchOf();
    const parse = serialize.parse({ name: 'find', text: 'SELECT $1::int', types: [23] });
    expect(batch.add(message(parse), STANDARD_DIALECT, false)).toBe('SELECT $1::int');
    batch.add(
      message(serialize.bind({ portal: 'cur', statement: 'find', values: ['1'] })),
      STANDARD_DIALECT,
      false,
    );
    batch.add(message(serialize.describe({ type: 'P', name: 'cur' })), STANDARD_DIALECT, false);
    batch.add(message(serialize.execute({ portal: 'cur', rows: 5 })), STANDARD_DIALECT, false);
    batch.add(message(serialize.close({ type: 'S', name: 'find' })), STANDARD_DIALECT, false);
    const unnamed = serialize.parse({ text: 'SELECT 2' });
    batch.add(message(unnamed), STANDARD_DIALECT, false);
    batch.push(serialize.sync());

    const { frames, copyAt, copyPlan, effects } = batch.take();
    expect(frames).toEqual([
      parse,
      serialize.bind({ portal: 'pgo7p1', statement: 'find', values: ['1'] }),
      serialize.describe({ type: 'P', name: 'pgo7p1' }),
      serialize.execute({ portal: 'pgo7p1', rows: 5 }),
      serialize.close({ type: 'S', name: 'find' }),
      unnamed,
      serialize.sync(),
    ]);
    expect({ copyAt, copyPlan, effects }).toEqual({ copyAt: -1, copyPlan: null, effects: [] });
    expect(batch.length).toBe(0);
    expect(batch.bytes).toBe(0);
  });

  it('marks where an Execute of a COPY FROM STDIN portal is, so the client gets CopyInResponse at once', () => {
    const batch = batchOf();
    batch.add(message(serialize.parse({ text: 'COPY items (name) FROM STDIN' })), STANDARD_DIALECT, false);
    batch.add(message(serialize.bind({})), STANDARD_DIALECT, false);
    expect(batch.startsCopy).toBe(false);
    batch.add(message(serialize.execute({})), STANDARD_DIALECT, false);
    expect(batch.startsCopy).toBe(true);
    const taken = batch.take();
    expect(taken.copyAt).toBe(2);
    expect(taken.copyPlan).toMatchObject({ binary: false });
    expect(batch.startsCopy).toBe(false);
  });

  it('keeps what a parsed statement does to the session, for after the batch succeeds', () => {
    const batch = batchOf();
    batch.add(message(serialize.parse({ text: 'SET search_path = app' })), STANDARD_DIALECT, false);
    expect(batch.take().effects).toEqual([expect.objectContaining({ settings: ['search_path'] })]);
  });

  it('sets transaction control apart under test transactions, answering it as a server would', () => {
    const batch = batchOf();
    batch.add(message(serialize.parse({ name: 'c', text: 'COMMIT' })), STANDARD_DIALECT, true);
    batch.add(message(serialize.bind({ statement: 'c' })), STANDARD_DIALECT, true);
    batch.add(message(serialize.describe({ type: 'P' })), STANDARD_DIALECT, true);
    batch.add(message(serialize.execute({})), STANDARD_DIALECT, true);
    expect(batch.length).toBe(0);
    expect(batch.hasControlSteps).toBe(true);
    expect(batch.takeControlSteps()).toEqual([
      Buffer.from([0x31, 0, 0, 0, 4]), // ParseComplete
      Buffer.from([0x32, 0, 0, 0, 4]), // BindComplete
      Buffer.from([0x6e, 0, 0, 0, 4]), // NoData
      { sql: 'COMMIT', control: 'commit' },
    ]);
    expect(batch.hasControlSteps).toBe(false);
    // Without test transactions the same messages go to the engine.
    const plain = batchOf();
    plain.add(message(serialize.parse({ text: 'COMMIT' })), STANDARD_DIALECT, false);
    expect(plain.length).toBe(1);
  });
});
