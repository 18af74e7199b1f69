import { describe, expect, it } from 'vitest';
import {
  BACKSLASH_DIALECT,
  identifierOf,
  leadingTokens,
  splitStatements,
  tokensOf,
} from '../src/protocol/sql-lexer.js';

const statements = (sql: string, dialect = undefined as typeof BACKSLASH_DIALECT | undefined) =>
  splitStatements(sql, dialect).map(([start, end]) => sql.slice(start, end).trim());

describe('splitStatements', () => {
  it('splits on semicolons outside strings, quoted names, comments and dollar quotes', () => {
    const sql = [
      'SELECT \'a;b\' AS "x;y"',
      '-- a comment; still a comment\nSELECT 2',
      '/* nested /* comment; */ still; */ SELECT 3',
      'DO $body$ BEGIN PERFORM 1; END $body$',
      "SELECT $$it's; fine$$",
    ].join(';\n');
    expect(statements(sql)).toEqual([
      'SELECT \'a;b\' AS "x;y"',
      '-- a comment; still a comment\nSELECT 2',
      '/* nested /* comment; */ still; */ SELECT 3',
      'DO $body$ BEGIN PERFORM 1; END $body$',
      "SELECT $$it's; fine$$",
    ]);
  });

  it('leaves out empty statements and reads backslash escapes only in the backslash dialect', () => {
    expect(statements(';; SELECT 1 ;;')).toEqual(['SELECT 1']);
    // Standard strings end at the quote after the backslash; E'' strings honour it.
    expect(statements("SELECT 'a\\'; SELECT 2")).toEqual(["SELECT 'a\\'", 'SELECT 2']);
    expect(statements("SELECT E'a\\'; b'; SELECT 2")).toEqual(["SELECT E'a\\'; b'", 'SELECT 2']);
    expect(statements("SELECT 'a\\'; b'; SELECT 2", BACKSLASH_DIALECT)).toEqual([
      "SELECT 'a\\'; b'",
      'SELECT 2',
    ]);
  });
});

describe('tokens', () => {
  it('upper-cases words, unquotes identifiers and strings, and tracks parenthesis depth (a closing one at the depth it returns to)', () => {
    const sql = 'select "Mixed""Name", \'it\'\'s\' FROM f((1))';
    expect(tokensOf(sql).map(({ kind, value, depth }) => [kind, value, depth])).toEqual([
      ['word', 'SELECT', 0],
      ['identifier', 'Mixed"Name', 0],
      ['symbol', ',', 0],
      ['string', "it's", 0],
      ['word', 'FROM', 0],
      ['word', 'F', 0],
      ['symbol', '(', 0],
      ['symbol', '(', 1],
      ['symbol', '1', 2],
      ['symbol', ')', 1],
      ['symbol', ')', 0],
    ]);
  });

  it('gives the first tokens only, skipping comments', () => {
    expect(leadingTokens('/* c */ -- c\n  begin isolation level', 2).map((token) => token.value)).toEqual([
      'BEGIN',
      'ISOLATION',
    ]);
  });

  it('reads identifiers as PostgreSQL does: folded, quoted as written, U& escapes, 63 bytes at most', () => {
    const name = (sql: string) => identifierOf(tokensOf(sql)[0]!, sql);
    expect(name('MyTable')).toBe('mytable');
    expect(name('"MyTable"')).toBe('MyTable');
    expect(name('U&"d\\0061t\\+000061"')).toBe('data');
    expect(name('x'.repeat(70))).toBe('x'.repeat(63));
  });
});
