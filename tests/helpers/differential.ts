import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import { type Message, RawClient } from './raw-client.js';

// Differential testing of the wire protocol: one sequence of frontend messages is sent to the
// proxy and to a native PostgreSQL, and the replies are compared message by message.

/** A server to send sequences to: a TCP port on 127.0.0.1 and its database. */
export interface WireTarget {
  port: number;
  database: string;
}

export const FUZZ_TABLE = 'fuzz_t';

const MARKER = 'pgo-end-of-sequence';

/**
 * Ends every sequence: CopyDone finishes a COPY left open (it is ignored otherwise), Sync ends an
 * extended batch, ROLLBACK a transaction, and the marker's reply shows that everything before it
 * was answered.
 */
const TERMINATOR = Buffer.concat([
  serialize.copyDone(),
  serialize.sync(),
  serialize.query('ROLLBACK'),
  serialize.query(`SELECT '${MARKER}'`),
]);

/** Sends `frames` on a fresh connection and returns the replies, normalised for comparison. */
export async function exchange(target: WireTarget, frames: readonly Buffer[]): Promise<string[]> {
  const client = await RawClient.ready(target.port, { database: target.database });
  try {
    client.send(serialize.query(`TRUNCATE ${FUZZ_TABLE}`));
    await client.untilReady();
    client.send(Buffer.concat([...frames, TERMINATOR]));
    const replies = await client.untilAll((messages) => {
      const marker = messages.findIndex((m) => m.name === 'dataRow' && m.fields?.[0] === MARKER);
      return (marker >= 0 && messages.length >= marker + 3) || client.closed;
    }, 10_000);
    // The marker's RowDescription, DataRow, CommandComplete and ReadyForQuery are the same anywhere.
    if (!client.closed) return replies.slice(0, -4).flatMap(normalise);
    return [...replies.flatMap(normalise), 'connection closed'];
  } finally {
    client.end();
    client.socket.destroy();
  }
}

/**
 * What must be equal between servers. Process ids, keys, settings reports and message texts may
 * differ (the native server may be another major version); codes, tags, rows and states may not.
 */
function normalise(message: Message): string[] {
  switch (message.name) {
    case 'parameterStatus':
      return [];
    case 'error':
    case 'notice':
      return [`${message.name}:${message.code}`];
    case 'readyForQuery':
      return [`Z:${message.status}`];
    case 'commandComplete':
      return [`C:${message.text}`];
    case 'dataRow':
      return [`D:${JSON.stringify(message.fields)}`];
    case 'rowDescription':
      return [`T:${(message as unknown as { fields: Array<{ name: string }> }).fields.map((f) => f.name)}`];
    case 'parameterDescription':
      return [`t:${(message as unknown as { dataTypeIDs: number[] }).dataTypeIDs}`];
    case 'copyInResponse':
    case 'copyOutResponse':
      return [`${message.name}:${(message as unknown as { columnTypes: number[] }).columnTypes.length}`];
    default:
      return [message.name];
  }
}

const STATEMENTS = [
  'SELECT 1',
  'SELECT $1::int',
  'selec 1',
  'SELECT 1/0',
  'BEGIN',
  'COMMIT',
  'ROLLBACK',
  `INSERT INTO ${FUZZ_TABLE} VALUES (1)`,
  `SELECT count(*)::int FROM ${FUZZ_TABLE}`,
  `COPY ${FUZZ_TABLE} TO STDOUT`,
  '',
];
const QUERIES = [
  ...STATEMENTS.filter((sql) => !sql.includes('$1')),
  'SELECT 1; SELECT 2',
  'SELECT 1; selec 2',
];
const STATEMENT_NAMES = ['', 's1', 's2'];
const PORTAL_NAMES = ['', 'p1'];

/** One frontend message, as fast-check generates and prints it. */
export type Step =
  | { type: 'query'; sql: string }
  | { type: 'parse'; name: string; sql: string }
  | { type: 'bind'; portal: string; statement: string; values: string[] }
  | { type: 'describe' | 'close'; target: 'S' | 'P'; name: string }
  | { type: 'execute'; portal: string; rows: number }
  | { type: 'flush' | 'sync' | 'copyDone' }
  | { type: 'copyData'; data: string }
  | { type: 'copyFail'; reason: string }
  | { type: 'copyIn'; extended: boolean; data: string[]; end: 'done' | 'fail' };

const COPY_IN = `COPY ${FUZZ_TABLE} FROM STDIN`;

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ type: fc.constant('query' as const), sql: fc.constantFrom(...QUERIES) }),
  fc.record({
    type: fc.constant('parse' as const),
    name: fc.constantFrom(...STATEMENT_NAMES),
    sql: fc.constantFrom(...STATEMENTS),
  }),
  fc.record({
    type: fc.constant('bind' as const),
    portal: fc.constantFrom(...PORTAL_NAMES),
    statement: fc.constantFrom(...STATEMENT_NAMES, 'nope'),
    values: fc.constantFrom<string[]>([], ['7']),
  }),
  fc.record({
    type: fc.constantFrom('describe' as const, 'close' as const),
    target: fc.constantFrom('S' as const, 'P' as const),
    name: fc.constantFrom(...STATEMENT_NAMES, 'p1', 'nope'),
  }),
  fc.record({
    type: fc.constant('execute' as const),
    portal: fc.constantFrom(...PORTAL_NAMES),
    rows: fc.constantFrom(0, 1),
  }),
  fc.record({ type: fc.constantFrom('flush' as const, 'sync' as const, 'copyDone' as const) }),
  fc.record({ type: fc.constant('copyData' as const), data: fc.constantFrom('1\n', '2\n3\n', 'x\n') }),
  fc.record({ type: fc.constant('copyFail' as const), reason: fc.constantFrom('because', "it's done") }),
  // A COPY FROM STDIN as clients send one: its data, then CopyDone or CopyFail. The proxy checks
  // the data when the COPY ends, where PostgreSQL reads it as it comes: a client that sends other
  // messages amid a COPY, or aborts one after a bad row, sees another error (documented).
  fc.record({
    type: fc.constant('copyIn' as const),
    extended: fc.boolean(),
    data: fc.array(fc.constantFrom('1\n', '2\n3\n', 'x\n'), { maxLength: 3 }),
    end: fc.constant('done' as const),
  }),
  fc.record({
    type: fc.constant('copyIn' as const),
    extended: fc.boolean(),
    data: fc.array(fc.constantFrom('1\n', '2\n3\n'), { maxLength: 3 }),
    end: fc.constant('fail' as const),
  }),
);

export const stepSequence = fc.array(step, { minLength: 1, maxLength: 10 });

export function frames(steps: readonly Step[]): Buffer[] {
  return steps.map(frameOf);
}

function frameOf(s: Step): Buffer {
  switch (s.type) {
    case 'query':
      return serialize.query(s.sql);
    case 'parse':
      return serialize.parse({ name: s.name, text: s.sql });
    case 'bind':
      return serialize.bind({ portal: s.portal, statement: s.statement, values: s.values });
    case 'describe':
      return serialize.describe({ type: s.target, name: s.name });
    case 'close':
      return serialize.close({ type: s.target, name: s.name });
    case 'execute':
      return serialize.execute({ portal: s.portal, rows: s.rows });
    case 'flush':
      return serialize.flush();
    case 'sync':
      return serialize.sync();
    case 'copyDone':
      return serialize.copyDone();
    case 'copyData':
      return serialize.copyData(Buffer.from(s.data));
    case 'copyFail':
      return serialize.copyFail(s.reason);
    case 'copyIn':
      return Buffer.concat([
        ...(s.extended
          ? [serialize.parse({ text: COPY_IN }), serialize.bind({}), serialize.execute({})]
          : [serialize.query(COPY_IN)]),
        ...s.data.map((data) => serialize.copyData(Buffer.from(data))),
        s.end === 'done' ? serialize.copyDone() : serialize.copyFail('stopped'),
      ]);
  }
}
