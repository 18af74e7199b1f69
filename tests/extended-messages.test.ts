import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import { ProtocolViolationError } from '../src/errors.js';
import {
  BIND,
  CLOSE,
  checkEmpty,
  checkFunctionCall,
  cstring,
  cstringEnd,
  DESCRIBE,
  decodeBind,
  decodeExecute,
  decodeParse,
  decodeQuery,
  decodeTarget,
  encodeWithNames,
  PARSE,
} from '../src/protocol/extended-messages.js';

/** The body of a frontend message: without its type byte and int32 length. */
const body = (message: Buffer) => Buffer.from(message.subarray(5));

const int16 = (value: number) => {
  const out = Buffer.alloc(2);
  out.writeInt16BE(value);
  return out;
};
const int32 = (value: number) => {
  const out = Buffer.alloc(4);
  out.writeInt32BE(value);
  return out;
};
const cstr = (text: string) => Buffer.from(`${text}\0`);

/** Asserts that `decode` refuses `input` as a protocol violation with `message`. */
function expectViolation(decode: () => unknown, message: string): void {
  let thrown: unknown;
  try {
    decode();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(ProtocolViolationError);
  expect(thrown).toMatchObject({ code: 'PROTOCOL_VIOLATION', message });
}

/** A FunctionCall body: function OID, argument formats, arguments, result format. */
function functionCall(formats: number[], args: (Buffer | null)[], resultFormat = 0): Buffer {
  return Buffer.concat([
    int32(1598),
    int16(formats.length),
    ...formats.map(int16),
    int16(args.length),
    ...args.map((arg) => (arg === null ? int32(-1) : Buffer.concat([int32(arg.length), arg]))),
    int16(resultFormat),
  ]);
}

describe('cstring and cstringEnd', () => {
  it('read the NUL-terminated string at an offset and the position past its NUL', () => {
    const buffer = Buffer.from('ab\0cdé\0');
    expect(cstring(buffer, 0)).toBe('ab');
    expect(cstringEnd(buffer, 0)).toBe(3);
    expect(cstring(buffer, 3)).toBe('cdé');
    expect(cstringEnd(buffer, 3)).toBe(buffer.length);
    expect(cstring(buffer, 2)).toBe('');
    expect(cstringEnd(buffer, 2)).toBe(3);
  });

  it('refuse a string without its NUL terminator', () => {
    expectViolation(() => cstring(Buffer.from('abc'), 0), 'invalid string in message');
    expectViolation(() => cstringEnd(Buffer.from('ab\0cd'), 3), 'invalid string in message');
    expectViolation(() => cstring(Buffer.alloc(0), 0), 'invalid string in message');
  });
});

describe('decodeParse', () => {
  it('reads the statement name and where the SQL text and the rest begin', () => {
    const sql = 'SELECT $1::int + $2';
    const message = body(serialize.parse({ name: 'stmt_1', text: sql, types: [23, 25] }));
    const parsed = decodeParse(message);
    expect(parsed).toEqual({ name: 'stmt_1', sqlStart: 7, sqlEnd: 7 + sql.length, restStart: 7 });
    expect(message.toString('utf8', parsed.sqlStart, parsed.sqlEnd)).toBe(sql);
    expect(message.subarray(parsed.restStart)).toEqual(
      Buffer.concat([cstr(sql), int16(2), int32(23), int32(25)]),
    );
  });

  it('reads the unnamed statement with no parameter types', () => {
    const parsed = decodeParse(body(serialize.parse({ text: 'SELECT 1' })));
    expect(parsed).toEqual({ name: '', sqlStart: 1, sqlEnd: 9, restStart: 1 });
  });

  it('counts SQL offsets in bytes, not characters', () => {
    const sql = "SELECT 'héllo'";
    const parsed = decodeParse(body(serialize.parse({ name: 'ü', text: sql })));
    expect(parsed).toEqual({
      name: 'ü',
      sqlStart: 3,
      sqlEnd: 3 + Buffer.byteLength(sql),
      restStart: 3,
    });
  });

  it('refuses a body whose name or SQL lacks its NUL', () => {
    expectViolation(() => decodeParse(Buffer.from('stmt')), 'invalid string in message');
    expectViolation(() => decodeParse(Buffer.from('stmt\0SELECT 1')), 'invalid string in message');
  });

  it('refuses a truncated parameter type count', () => {
    expectViolation(() => decodeParse(Buffer.from('\0SELECT 1\0')), 'insufficient data left in message');
    expectViolation(
      () => decodeParse(Buffer.concat([cstr(''), cstr('SELECT 1'), Buffer.from([0])])),
      'insufficient data left in message',
    );
  });

  it('refuses a negative parameter type count', () => {
    expectViolation(
      () => decodeParse(Buffer.concat([cstr(''), cstr('SELECT 1'), int16(-1)])),
      'invalid parameter count in Parse',
    );
  });

  it('refuses missing parameter types and trailing bytes', () => {
    const good = body(serialize.parse({ text: 'SELECT $1', types: [23] }));
    expectViolation(() => decodeParse(good.subarray(0, good.length - 1)), 'invalid message format');
    expectViolation(() => decodeParse(Buffer.concat([good, Buffer.from([0])])), 'invalid message format');
  });
});

describe('decodeBind', () => {
  it('reads portal and statement names, and where the rest begins', () => {
    const message = body(
      serialize.bind({ portal: 'portal_1', statement: 'stmt_1', values: ['42', null, Buffer.from([1, 2])] }),
    );
    expect(decodeBind(message)).toEqual({ portal: 'portal_1', statement: 'stmt_1', restStart: 16 });
    // The rest: three format codes (text, text, binary), three values (NULL as -1), one result format.
    expect(message.subarray(16)).toEqual(
      Buffer.concat([
        int16(3),
        int16(0),
        int16(0),
        int16(1),
        int16(3),
        int32(2),
        Buffer.from('42'),
        int32(-1),
        int32(2),
        Buffer.from([1, 2]),
        int16(1),
        int16(0),
      ]),
    );
  });

  it('reads the unnamed portal and statement with no parameters and binary results', () => {
    expect(decodeBind(body(serialize.bind({ binary: true })))).toEqual({
      portal: '',
      statement: '',
      restStart: 2,
    });
  });

  it('accepts a zero-length parameter, a single format code and no result formats', () => {
    const message = Buffer.concat([
      cstr('p'),
      cstr('s'),
      int16(1),
      int16(1),
      int16(2),
      int32(0),
      int32(-1),
      int16(0),
    ]);
    expect(decodeBind(message)).toEqual({ portal: 'p', statement: 's', restStart: 4 });
  });

  it('refuses names without their NUL', () => {
    expectViolation(() => decodeBind(Buffer.from('portal')), 'invalid string in message');
    expectViolation(() => decodeBind(Buffer.from('portal\0stmt')), 'invalid string in message');
  });

  it('refuses negative counts', () => {
    const names = Buffer.concat([cstr(''), cstr('')]);
    expectViolation(
      () => decodeBind(Buffer.concat([names, int16(-1), int16(0), int16(0)])),
      'invalid format count in Bind',
    );
    expectViolation(
      () => decodeBind(Buffer.concat([names, int16(0), int16(-2), int16(0)])),
      'invalid parameter count in Bind',
    );
    expectViolation(
      () => decodeBind(Buffer.concat([names, int16(0), int16(0), int16(-1)])),
      'invalid result format count in Bind',
    );
  });

  it('refuses a parameter length below -1', () => {
    const message = Buffer.concat([cstr(''), cstr(''), int16(0), int16(1), int32(-2), int16(0)]);
    expectViolation(() => decodeBind(message), 'invalid parameter length in Bind');
  });

  it('refuses a body cut short anywhere', () => {
    const good = body(serialize.bind({ statement: 's', values: ['abc', null] }));
    expect(decodeBind(good)).toEqual({ portal: '', statement: 's', restStart: 3 });
    // Every prefix that keeps both names but loses later bytes is refused.
    for (let length = 3; length < good.length; length++) {
      expect(() => decodeBind(good.subarray(0, length)), `prefix of ${length} bytes`).toThrow(
        ProtocolViolationError,
      );
    }
    // A count that promises more than is there says so.
    expectViolation(
      () => decodeBind(Buffer.concat([cstr(''), cstr(''), int16(3), int16(0)])),
      'insufficient data left in message',
    );
    expectViolation(
      () =>
        decodeBind(Buffer.concat([cstr(''), cstr(''), int16(0), int16(1), int32(10), Buffer.from('abc')])),
      'insufficient data left in message',
    );
  });

  it('refuses trailing bytes and result formats missing from the end', () => {
    const good = body(serialize.bind({ values: ['1'] }));
    expectViolation(() => decodeBind(Buffer.concat([good, Buffer.from([0])])), 'invalid message format');
    const names = Buffer.concat([cstr(''), cstr('')]);
    expectViolation(
      () => decodeBind(Buffer.concat([names, int16(0), int16(0), int16(2), int16(0)])),
      'invalid message format',
    );
  });
});

describe('decodeTarget', () => {
  it('reads Describe and Close of a statement or a portal', () => {
    expect(decodeTarget(body(serialize.describe({ type: 'S', name: 'stmt_1' })))).toEqual({
      kind: 'S',
      name: 'stmt_1',
    });
    expect(decodeTarget(body(serialize.describe({ type: 'P' })))).toEqual({ kind: 'P', name: '' });
    expect(decodeTarget(body(serialize.close({ type: 'P', name: 'cur' })))).toEqual({
      kind: 'P',
      name: 'cur',
    });
    expect(decodeTarget(body(serialize.close({ type: 'S', name: 'ü' })))).toEqual({ kind: 'S', name: 'ü' });
  });

  it('refuses an empty body and a kind other than S or P', () => {
    expectViolation(() => decodeTarget(Buffer.alloc(0)), 'insufficient data left in message');
    expectViolation(() => decodeTarget(Buffer.from('Xname\0')), 'invalid Describe/Close target');
    expectViolation(() => decodeTarget(Buffer.from('sname\0')), 'invalid Describe/Close target');
  });

  it('refuses a name without its NUL, and trailing bytes', () => {
    expectViolation(() => decodeTarget(Buffer.from('S')), 'invalid string in message');
    expectViolation(() => decodeTarget(Buffer.from('Sname')), 'invalid string in message');
    expectViolation(() => decodeTarget(Buffer.from('Sname\0\0')), 'invalid message format');
  });
});

describe('decodeExecute', () => {
  it('reads the portal and the row limit', () => {
    expect(decodeExecute(body(serialize.execute({ portal: 'cur', rows: 100 })))).toEqual({
      portal: 'cur',
      maxRows: 100,
    });
    expect(decodeExecute(body(serialize.execute()))).toEqual({ portal: '', maxRows: 0 });
    expect(decodeExecute(body(serialize.execute({ rows: 5 })))).toEqual({ portal: '', maxRows: 5 });
  });

  it('refuses a missing NUL, a short row limit and trailing bytes', () => {
    expectViolation(() => decodeExecute(Buffer.from('cur')), 'invalid string in message');
    expectViolation(
      () => decodeExecute(Buffer.concat([cstr('cur'), Buffer.from([0, 0, 1])])),
      'insufficient data left in message',
    );
    expectViolation(
      () => decodeExecute(Buffer.concat([cstr('cur'), int32(1), Buffer.from([0])])),
      'invalid message format',
    );
  });
});

describe('decodeQuery', () => {
  it('returns the offset of the NUL that ends the SQL text', () => {
    const sql = "SELECT 'é'; SELECT 2";
    const message = body(serialize.query(sql));
    expect(decodeQuery(message)).toBe(Buffer.byteLength(sql));
    expect(decodeQuery(body(serialize.query('')))).toBe(0);
  });

  it('refuses a missing NUL and bytes after it', () => {
    expectViolation(() => decodeQuery(Buffer.from('SELECT 1')), 'invalid string in message');
    expectViolation(() => decodeQuery(Buffer.from('SELECT 1\0SELECT 2\0')), 'invalid message format');
  });
});

describe('checkFunctionCall', () => {
  it('accepts well-formed calls, with text, binary and NULL arguments', () => {
    expect(() => checkFunctionCall(functionCall([], []))).not.toThrow();
    expect(() =>
      checkFunctionCall(functionCall([0, 1], [Buffer.from('abc'), null, Buffer.alloc(0)], 1)),
    ).not.toThrow();
  });

  it('refuses a body too short for the OID and format count', () => {
    expectViolation(() => checkFunctionCall(Buffer.alloc(5)), 'insufficient data left in message');
  });

  it('refuses negative counts and lengths', () => {
    expectViolation(
      () => checkFunctionCall(Buffer.concat([int32(1), int16(-1), int16(0), int16(0)])),
      'invalid format count in FunctionCall',
    );
    expectViolation(
      () => checkFunctionCall(Buffer.concat([int32(1), int16(0), int16(-1), int16(0)])),
      'invalid argument count in FunctionCall',
    );
    expectViolation(
      () => checkFunctionCall(Buffer.concat([int32(1), int16(0), int16(1), int32(-2), int16(0)])),
      'invalid argument length in FunctionCall',
    );
  });

  it('refuses truncated bodies and trailing bytes', () => {
    const good = functionCall([1], [Buffer.from('xyz')]);
    for (let length = 0; length < good.length; length++) {
      expect(() => checkFunctionCall(good.subarray(0, length)), `prefix of ${length} bytes`).toThrow(
        ProtocolViolationError,
      );
    }
    expectViolation(
      () => checkFunctionCall(good.subarray(0, good.length - 1)),
      'insufficient data left in message',
    );
    expectViolation(
      () => checkFunctionCall(Buffer.concat([good, Buffer.from([0])])),
      'invalid message format',
    );
  });
});

describe('checkEmpty', () => {
  it('accepts an empty body and refuses any byte', () => {
    expect(() => checkEmpty(body(serialize.sync()))).not.toThrow();
    expect(() => checkEmpty(body(serialize.flush()))).not.toThrow();
    expectViolation(() => checkEmpty(Buffer.from([0])), 'invalid message format');
  });
});

describe('encodeWithNames', () => {
  it('re-encodes a Parse under another statement name, byte for byte as pg-protocol would', () => {
    const original = serialize.parse({ name: 'client_stmt', text: 'SELECT $1', types: [23] });
    const message = body(original);
    const parsed = decodeParse(message);
    const renamed = encodeWithNames(PARSE, null, ['s_7_é'], message.subarray(parsed.restStart));
    expect(renamed).toEqual(serialize.parse({ name: 's_7_é', text: 'SELECT $1', types: [23] }));
    expect(decodeParse(body(renamed))).toMatchObject({ name: 's_7_é' });
  });

  it('re-encodes a Bind with new portal and statement names, keeping formats, NULLs and values', () => {
    const values = ['7', null, Buffer.from([0xde, 0xad])];
    const message = body(serialize.bind({ portal: 'p', statement: 'client_stmt', values, binary: true }));
    const { restStart } = decodeBind(message);
    const renamed = encodeWithNames(BIND, null, ['portal_9', 's_7'], message.subarray(restStart));
    expect(renamed).toEqual(serialize.bind({ portal: 'portal_9', statement: 's_7', values, binary: true }));
    expect(decodeBind(body(renamed))).toEqual({ portal: 'portal_9', statement: 's_7', restStart: 13 });
  });

  it('puts the lead bytes before the names, for Describe and Close', () => {
    const renamed = encodeWithNames(DESCRIBE, Buffer.from('S'), ['s_1'], Buffer.alloc(0));
    expect(renamed).toEqual(serialize.describe({ type: 'S', name: 's_1' }));
    const closed = encodeWithNames(CLOSE, Buffer.from('P'), [''], Buffer.alloc(0));
    expect(closed).toEqual(Buffer.from([CLOSE, 0, 0, 0, 6, 0x50, 0]));
    expect(decodeTarget(body(closed))).toEqual({ kind: 'P', name: '' });
  });

  it('writes the type byte and a length that counts itself but not the type', () => {
    const out = encodeWithNames(0x45, null, ['ab'], int32(3));
    expect(out).toEqual(Buffer.from([0x45, 0, 0, 0, 11, 0x61, 0x62, 0, 0, 0, 0, 3]));
    expect(encodeWithNames(0x45, null, [], Buffer.alloc(0))).toEqual(Buffer.from([0x45, 0, 0, 0, 4]));
  });
});
