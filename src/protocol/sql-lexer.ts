/**
 * Just enough of the PostgreSQL lexer to find statement boundaries and read the leading words of
 * a statement: comments, quoted identifiers, strings (E'', $tag$) and parentheses are respected.
 */

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

/** Yields tokens of `sql` from `from` to `to`; stops early when the callback returns false. */
export function forEachToken(
  sql: string,
  visit: (token: Token) => boolean,
  from = 0,
  to = sql.length,
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
    if (c === 39 || ((c === 69 || c === 101) && sql.charCodeAt(i + 1) === 39)) {
      const escapes = c !== 39;
      const [value, end] = readQuoted(sql, escapes ? i + 1 : i, to, escapes);
      token = { kind: 'string', value, start, end, depth };
      i = end;
    } else if (c === 34) {
      const [value, end] = readQuoted(sql, i, to, false);
      token = { kind: 'identifier', value, start, end, depth };
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
export function splitStatements(sql: string): Array<[number, number]> {
  if (!sql.includes(';')) return hasToken(sql, 0, sql.length) ? [[0, sql.length]] : [];
  const ranges: Array<[number, number]> = [];
  let start = 0;
  forEachToken(sql, (token) => {
    if (token.kind === 'symbol' && token.value === ';' && token.depth === 0) {
      if (hasToken(sql, start, token.start)) ranges.push([start, token.start]);
      start = token.end;
    }
    return true;
  });
  if (hasToken(sql, start, sql.length)) ranges.push([start, sql.length]);
  return ranges;
}

/** The first `count` tokens of a statement. */
export function leadingTokens(sql: string, count: number, from = 0, to = sql.length): Token[] {
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
  );
  return tokens;
}

export function tokensOf(sql: string, from = 0, to = sql.length): Token[] {
  const tokens: Token[] = [];
  forEachToken(sql, (token) => tokens.push(token) > 0, from, to);
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
