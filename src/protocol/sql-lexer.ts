/**
 * Just enough of the PostgreSQL lexer to find statement boundaries and read the leading words of
 * a statement: comments, quoted identifiers (also U&""), strings (E'', U&'', $tag$, and '' with
 * backslash escapes when standard_conforming_strings is off) and parentheses are respected.
 */

/** How the session reads '...' strings: with standard_conforming_strings off, a backslash escapes. */
export interface SqlDialect {
  backslashEscapes: boolean;
}

export const STANDARD_DIALECT: SqlDialect = { backslashEscapes: false };

/** The longest identifier the engine keeps (NAMEDATALEN - 1 bytes); longer ones are truncated. */
const MAX_IDENTIFIER_BYTES = 63;

export type TokenKind = 'word' | 'identifier' | 'string' | 'symbol';

export interface Token {
  kind: TokenKind;
  /** Words upper-cased, quoted identifiers unquoted, strings unescaped; symbols as written. */
  value: string;
  start: number;
  end: number;
  /** Parenthesis depth at the token. */
  depth: number;
}

const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13);
const isWordStart = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c >= 128;
const isWordPart = (c: number) => isWordStart(c) || (c >= 48 && c <= 57) || c === 36;

export const BACKSLASH_DIALECT: SqlDialect = { backslashEscapes: true };

/** The name the engine reads from a word or identifier token: words fold ASCII letters to lower case. */
export function identifierOf(token: Token, sql: string): string {
  if (token.kind !== 'word') return token.value;
  return truncateIdentifier(sql.slice(token.start, token.end).replace(/[A-Z]+/g, (run) => run.toLowerCase()));
}

/** Yields tokens of `sql` from `from` to `to`; stops early when the callback returns false. */
export function forEachToken(
  sql: string,
  visit: (token: Token) => boolean,
  from = 0,
  to = sql.length,
  dialect: SqlDialect = STANDARD_DIALECT,
): number {
  let i = from;
  let depth = 0;
  while (i < to) {
    const c = sql.charCodeAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (c === 45 && sql.charCodeAt(i + 1) === 45) {
      const newline = sql.indexOf('\n', i);
      i = newline < 0 || newline > to ? to : newline + 1;
      continue;
    }
    if (c === 47 && sql.charCodeAt(i + 1) === 42) {
      i = skipBlockComment(sql, i, to);
      continue;
    }
    const start = i;
    let token: Token;
    const unicode = (c === 85 || c === 117) && sql.charCodeAt(i + 1) === 38;
    const quoteAt = unicode ? i + 2 : i;
    const quote = sql.charCodeAt(quoteAt);
    if (unicode && (quote === 39 || quote === 34)) {
      const [raw, end] = readQuoted(sql, quoteAt, to, false);
      const [value, after] = decodeUnicodeEscapes(sql, raw, end, to);
      token =
        quote === 39
          ? { kind: 'string', value, start, end: after, depth }
          : { kind: 'identifier', value: truncateIdentifier(value), start, end: after, depth };
      i = after;
    } else if (c === 39 || ((c === 69 || c === 101) && sql.charCodeAt(i + 1) === 39)) {
      const escapes = c !== 39 || dialect.backslashEscapes;
      const [value, end] = readQuoted(sql, c !== 39 ? i + 1 : i, to, escapes);
      token = { kind: 'string', value, start, end, depth };
      i = end;
    } else if (c === 34) {
      const [value, end] = readQuoted(sql, i, to, false);
      token = { kind: 'identifier', value: truncateIdentifier(value), start, end, depth };
      i = end;
    } else if (c === 36 && dollarTag(sql, i, to) !== null) {
      const tag = dollarTag(sql, i, to)!;
      const close = sql.indexOf(tag, i + tag.length);
      const end = close < 0 || close + tag.length > to ? to : close + tag.length;
      token = {
        kind: 'string',
        value: sql.slice(i + tag.length, Math.max(i + tag.length, end - tag.length)),
        start,
        end,
        depth,
      };
      i = end;
    } else if (isWordStart(c)) {
      let end = i + 1;
      while (end < to && isWordPart(sql.charCodeAt(end))) end++;
      token = { kind: 'word', value: sql.slice(i, end).toUpperCase(), start, end, depth };
      i = end;
    } else {
      if (c === 41) depth = Math.max(0, depth - 1);
      token = { kind: 'symbol', value: sql[i]!, start, end: i + 1, depth };
      if (c === 40) depth++;
      i++;
    }
    if (!visit(token)) return i;
  }
  return i;
}

/** [start, end) ranges of the non-empty statements in a multi-statement string. */
export function splitStatements(
  sql: string,
  dialect: SqlDialect = STANDARD_DIALECT,
): Array<[number, number]> {
  if (!sql.includes(';')) return hasToken(sql, 0, sql.length) ? [[0, sql.length]] : [];
  const ranges: Array<[number, number]> = [];
  let start = 0;
  forEachToken(
    sql,
    (token) => {
      if (token.kind === 'symbol' && token.value === ';' && token.depth === 0) {
        if (hasToken(sql, start, token.start)) ranges.push([start, token.start]);
        start = token.end;
      }
      return true;
    },
    0,
    sql.length,
    dialect,
  );
  if (hasToken(sql, start, sql.length)) ranges.push([start, sql.length]);
  return ranges;
}

/** The first `count` tokens of a statement. */
export function leadingTokens(
  sql: string,
  count: number,
  from = 0,
  to = sql.length,
  dialect: SqlDialect = STANDARD_DIALECT,
): Token[] {
  const tokens: Token[] = [];
  if (count <= 0) return tokens;
  forEachToken(
    sql,
    (token) => {
      tokens.push(token);
      return tokens.length < count;
    },
    from,
    to,
    dialect,
  );
  return tokens;
}

export function tokensOf(
  sql: string,
  from = 0,
  to = sql.length,
  dialect: SqlDialect = STANDARD_DIALECT,
): Token[] {
  const tokens: Token[] = [];
  forEachToken(sql, (token) => tokens.push(token) > 0, from, to, dialect);
  return tokens;
}

function hasToken(sql: string, from: number, to: number): boolean {
  return leadingTokens(sql, 1, from, to).length > 0;
}

function skipBlockComment(sql: string, from: number, to: number): number {
  let nesting = 0;
  let i = from;
  while (i < to) {
    if (sql.charCodeAt(i) === 47 && sql.charCodeAt(i + 1) === 42) {
      nesting++;
      i += 2;
    } else if (sql.charCodeAt(i) === 42 && sql.charCodeAt(i + 1) === 47) {
      nesting--;
      i += 2;
      if (nesting === 0) return i;
    } else i++;
  }
  return to;
}

/**
 * Reads a quoted token starting at `quote` (a '...' string or a "..." identifier): a doubled
 * quote stands for itself, and with `escapes` (E'...' strings) a backslash escapes the next character.
 */
function readQuoted(sql: string, quote: number, to: number, escapes: boolean): [string, number] {
  const mark = sql.charCodeAt(quote);
  let value = '';
  let i = quote + 1;
  while (i < to) {
    const c = sql.charCodeAt(i);
    if (escapes && c === 92) {
      value += sql[i + 1] ?? '';
      i += 2;
    } else if (c === mark) {
      if (sql.charCodeAt(i + 1) === mark) {
        value += sql[i];
        i += 2;
      } else return [value, i + 1];
    } else {
      value += sql[i];
      i++;
    }
  }
  return [value, to];
}

function dollarTag(sql: string, from: number, to: number): string | null {
  let i = from + 1;
  while (i < to && sql.charCodeAt(i) !== 36) {
    const c = sql.charCodeAt(i);
    if (!(isWordPart(c) && c !== 36) || (i === from + 1 && c >= 48 && c <= 57)) return null;
    i++;
  }
  return i < to ? sql.slice(from, i + 1) : null;
}

/**
 * The value of a U&'...' or U&"..." token: \XXXX and \+XXXXXX escapes (or those of the
 * character a following UESCAPE 'c' names), and the escape character doubled for itself.
 * Returns the value and where the token ends, after any UESCAPE clause.
 */
function decodeUnicodeEscapes(sql: string, raw: string, end: number, to: number): [string, number] {
  let escapeChar = '\\';
  let after = end;
  const clause = /^\s*UESCAPE\s*'([^'])'/i.exec(sql.slice(end, to));
  if (clause) {
    escapeChar = clause[1]!;
    after = end + clause[0].length;
  }
  let value = '';
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== escapeChar) {
      value += raw[i];
      continue;
    }
    if (raw[i + 1] === escapeChar) {
      value += escapeChar;
      i++;
      continue;
    }
    const long = raw[i + 1] === '+';
    const digits = raw.slice(long ? i + 2 : i + 1, long ? i + 8 : i + 5);
    if (/^[0-9a-fA-F]+$/.test(digits) && digits.length === (long ? 6 : 4)) {
      const code = Number.parseInt(digits, 16);
      value += code <= 0x10ffff ? String.fromCodePoint(code) : '';
      i += long ? 7 : 4;
    } else value += raw[i];
  }
  return [value, after];
}

/** What the engine keeps of a long identifier: its first 63 bytes, whole characters only. */
function truncateIdentifier(name: string): string {
  if (Buffer.byteLength(name) <= MAX_IDENTIFIER_BYTES) return name;
  let bytes = 0;
  let end = 0;
  for (const char of name) {
    bytes += Buffer.byteLength(char);
    if (bytes > MAX_IDENTIFIER_BYTES) break;
    end += char.length;
  }
  return name.slice(0, end);
}
