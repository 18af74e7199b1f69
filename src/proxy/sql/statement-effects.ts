import {
  identifierOf,
  leadingTokens,
  type SqlDialect,
  STANDARD_DIALECT,
  splitStatements,
  type Token,
  tokensOf,
} from '../../protocol/sql-lexer.js';

/** How to run a client's `COPY ... FROM STDIN` through the engine's blob device instead. */
export interface CopyInPlan {
  /** The same statement reading from '/dev/blob'. */
  loadSql: string;
  binary: boolean;
  /** Columns named in the statement, 0 when it names none (then the table's columns count). */
  columns: number;
  /** The table's name, as the parts of a qualified name. */
  relation: string[];
}

/** What the proxy must know about SQL before the engine runs it; null fields mean "none". */
export interface StatementEffects {
  /** Set when the SQL is exactly one `COPY ... FROM STDIN`. */
  copyIn: CopyInPlan | null;
  /** Why the engine must not see this SQL (it would end the engine's session), or null. */
  refusal: { code: string; message: string } | null;
  /** Session settings changed by SET (not SET LOCAL), as names that RESET accepts. */
  settings: string[];
  /** Settings RESET (`*` for RESET ALL and DISCARD ALL), as lower-case names. */
  resets: string[];
  /** The SQL may change session settings: SET, RESET, DISCARD ALL, or a call of set_config(). */
  touchesSettings: boolean;
  /** Temporary tables, views and sequences made (CREATE TEMP ...). */
  tempObjects: TempObject[];
  /** DISCARD ALL or DISCARD TEMP: they reach every client's state in a shared session. */
  discard: 'ALL' | 'TEMP' | null;
  /** CREATE, DROP or ALTER ... RENAME of a DATABASE: another engine serves the database. */
  database: DatabaseStatement | null;
}

export interface DatabaseStatement {
  action: 'create' | 'drop' | 'rename';
  name: string;
  /** ALTER DATABASE name RENAME TO newName. */
  newName?: string;
  /** DROP DATABASE ... WITH (FORCE): clients connected to it are ended first. */
  force: boolean;
  /** CREATE DATABASE ... TEMPLATE name: the database copied; null for the default (template1). */
  template: string | null;
}

export interface TempObject {
  kind: 'TABLE' | 'VIEW' | 'SEQUENCE';
  name: string;
}

const INTERESTING = /copy|set|temp|discard|database/i;

/** Reads the statements of a Query or Parse; null when none of them concerns the proxy. */
export function statementEffects(
  sql: string,
  dialect: SqlDialect = STANDARD_DIALECT,
): StatementEffects | null {
  if (!INTERESTING.test(sql)) return null;
  const effects: StatementEffects = {
    copyIn: null,
    refusal: null,
    settings: [],
    resets: [],
    touchesSettings: /set_config/i.test(sql),
    tempObjects: [],
    database: null,
    discard: null,
  };
  const statements = splitStatements(sql, dialect);
  for (const [start, end] of statements) {
    const head = leadingTokens(sql, 4, start, end, dialect);
    switch (head[0]?.kind === 'word' ? head[0].value : '') {
      case 'COPY':
        readCopy(sql, start, end, statements.length, effects, dialect);
        break;
      case 'SET':
        readSet(sql, start, end, effects, dialect);
        break;
      case 'RESET':
        readReset(sql, start, end, effects, dialect);
        break;
      case 'DISCARD':
        if (head[1]?.value === 'ALL') effects.resets.push('*');
        if (head[1]?.value === 'ALL' || head[1]?.value === 'TEMP' || head[1]?.value === 'TEMPORARY')
          effects.discard = head[1].value === 'ALL' ? 'ALL' : 'TEMP';
        break;
      case 'SELECT': {
        const temp = readSelectIntoTemp(sql, start, end, dialect);
        if (temp) effects.tempObjects.push(temp);
        break;
      }
      case 'CREATE': {
        const temp = readTempObject(sql, start, end, dialect);
        if (temp) effects.tempObjects.push(temp);
        if (head[1]?.value === 'DATABASE' && isName(head[2]))
          effects.database = {
            action: 'create',
            name: identifierOf(head[2]!, sql),
            force: false,
            template: readTemplate(sql, start, end, dialect),
          };
        break;
      }
      case 'DROP':
        if (head[1]?.value === 'DATABASE') effects.database = readDropDatabase(sql, start, end, dialect);
        break;
      case 'ALTER':
        if (head[1]?.value === 'DATABASE') effects.database = readRenameDatabase(sql, start, end, dialect);
        break;
    }
  }
  effects.touchesSettings ||= effects.settings.length > 0 || effects.resets.length > 0;
  return effects;
}

/** `DROP DATABASE [IF EXISTS] name [[WITH] (FORCE)]`. */
function readDropDatabase(
  sql: string,
  start: number,
  end: number,
  dialect: SqlDialect,
): DatabaseStatement | null {
  const tokens = tokensOf(sql, start, end, dialect);
  let at = 2;
  if (tokens[at]?.value === 'IF' && tokens[at + 1]?.value === 'EXISTS') at += 2;
  const name = tokens[at];
  if (!isName(name)) return null;
  const force = tokens.slice(at + 1).some((token) => token.kind === 'word' && token.value === 'FORCE');
  return { action: 'drop', name: identifierOf(name!, sql), force, template: null };
}

/** `ALTER DATABASE name RENAME TO new_name`; null for any other ALTER DATABASE. */
function readRenameDatabase(
  sql: string,
  start: number,
  end: number,
  dialect: SqlDialect,
): DatabaseStatement | null {
  const [, , name, rename, to, newName] = leadingTokens(sql, 6, start, end, dialect);
  if (!isName(name) || rename?.value !== 'RENAME' || to?.value !== 'TO' || !isName(newName)) return null;
  return {
    action: 'rename',
    name: identifierOf(name!, sql),
    newName: identifierOf(newName!, sql),
    force: false,
    template: null,
  };
}

/** The name after `TEMPLATE [=]` in a CREATE DATABASE; null when it names none. */
function readTemplate(sql: string, start: number, end: number, dialect: SqlDialect): string | null {
  const tokens = tokensOf(sql, start, end, dialect);
  const at = tokens.findIndex((token, i) => i > 2 && token.kind === 'word' && token.value === 'TEMPLATE');
  if (at < 0) return null;
  const name = tokens[tokens[at + 1]?.value === '=' ? at + 2 : at + 1];
  if (!isName(name) || (name!.kind === 'word' && name!.value === 'DEFAULT')) return null;
  return identifierOf(name!, sql);
}

/**
 * The temporary table, view or sequence a CREATE makes: `CREATE [OR REPLACE] [LOCAL | GLOBAL]
 * TEMP[ORARY] [UNLOGGED | RECURSIVE] TABLE | VIEW | SEQUENCE [IF NOT EXISTS] [pg_temp.]name`, or
 * the same without TEMP in the pg_temp schema, which makes it temporary too.
 */
function readTempObject(sql: string, start: number, end: number, dialect: SqlDialect): TempObject | null {
  const tokens = leadingTokens(sql, 14, start, end, dialect);
  let at = 1;
  if (tokens[at]?.value === 'OR' && tokens[at + 1]?.value === 'REPLACE') at += 2;
  const temp = readTempKeywords(tokens, at);
  at = temp.next;
  if (tokens[at]?.value === 'UNLOGGED' || tokens[at]?.value === 'RECURSIVE') at++;
  const kind = tokens[at]?.value;
  if (kind !== 'TABLE' && kind !== 'VIEW' && kind !== 'SEQUENCE') return null;
  at++;
  if (tokens[at]?.value === 'IF' && tokens[at + 1]?.value === 'NOT' && tokens[at + 2]?.value === 'EXISTS')
    at += 3;
  const name = tempName(tokens, at, sql, temp.found);
  return name === null ? null : { kind, name };
}

/** `SELECT ... INTO [LOCAL | GLOBAL] TEMP[ORARY] [TABLE] name` (or `INTO [TABLE] pg_temp.name`). */
function readSelectIntoTemp(sql: string, start: number, end: number, dialect: SqlDialect): TempObject | null {
  const tokens = tokensOf(sql, start, end, dialect);
  const into = tokens.findIndex(
    (token) => token.depth === 0 && token.kind === 'word' && token.value === 'INTO',
  );
  if (into < 0) return null;
  const temp = readTempKeywords(tokens, into + 1);
  let at = temp.next;
  if (tokens[at]?.value === 'TABLE') at++;
  const name = tempName(tokens, at, sql, temp.found);
  return name === null ? null : { kind: 'TABLE', name };
}

/** Reads `[LOCAL | GLOBAL] TEMP | TEMPORARY` at `at`: whether it is there, and what follows. */
function readTempKeywords(tokens: Token[], at: number): { found: boolean; next: number } {
  const scoped = tokens[at]?.value === 'LOCAL' || tokens[at]?.value === 'GLOBAL';
  const word = tokens[scoped ? at + 1 : at]?.value;
  if (word === 'TEMP' || word === 'TEMPORARY') return { found: true, next: scoped ? at + 2 : at + 1 };
  return { found: false, next: at };
}

/** The name at `at` (`name` or `pg_temp.name`) when what is made there is temporary, else null. */
function tempName(tokens: Token[], at: number, sql: string, temp: boolean): string | null {
  let name = tokens[at];
  const inTempSchema = !!name && identifierOf(name, sql) === 'pg_temp' && tokens[at + 1]?.value === '.';
  if (inTempSchema) name = tokens[at + 2];
  return (temp || inTempSchema) && isName(name) ? identifierOf(name!, sql) : null;
}

function isName(token: Token | undefined): boolean {
  return token?.kind === 'word' || token?.kind === 'identifier';
}

function readCopy(
  sql: string,
  start: number,
  end: number,
  statements: number,
  effects: StatementEffects,
  dialect: SqlDialect,
): void {
  const tokens = tokensOf(sql, start, end, dialect);
  const directionAt = tokens.findIndex(
    (token) => token.depth === 0 && token.kind === 'word' && (token.value === 'FROM' || token.value === 'TO'),
  );
  const source = tokens[directionAt + 1];
  if (directionAt < 0 || !source) return;
  if (tokens[directionAt]!.value !== 'FROM' || source.kind !== 'word' || source.value !== 'STDIN') return;
  if (statements > 1) {
    effects.refusal = {
      code: '0A000',
      message: 'COPY FROM STDIN must be the only statement of its query when served through pglite-oxide',
    };
    return;
  }
  effects.copyIn = {
    loadSql: `${sql.slice(start, source.start)}'/dev/blob'${sql.slice(source.end, end)}`,
    binary: isBinaryCopy(tokens, directionAt),
    columns: namedColumns(tokens, directionAt),
    relation: relationName(sql, tokens),
  };
}

/**
 * The qualified name after COPY (and the old-style BINARY before it), up to a column list or FROM.
 */
function relationName(sql: string, tokens: Token[]): string[] {
  const first = tokens[1]?.kind === 'word' && tokens[1].value === 'BINARY' && isName(tokens[2]) ? 2 : 1;
  if (tokens[first]?.kind === 'word' && tokens[first].value === 'FROM') return [];
  return dottedNameAt(tokens, first, sql);
}

function isBinaryCopy(tokens: Token[], directionAt: number): boolean {
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.kind === 'word' && token.value === 'BINARY' && token.depth === 0) return true;
    if (token.kind === 'word' && token.value === 'FORMAT' && i > directionAt) {
      const value = tokens[i + 1];
      if (value && value.value.toUpperCase() === 'BINARY') return true;
    }
  }
  return false;
}

function namedColumns(tokens: Token[], directionAt: number): number {
  let columns = 0;
  for (let i = 0; i < directionAt; i++) {
    const token = tokens[i]!;
    if (token.depth === 1 && (token.kind === 'word' || token.kind === 'identifier')) columns++;
  }
  return columns;
}

const SPECIAL_SETTINGS: Record<string, string> = {
  TIME: 'timezone',
  NAMES: 'client_encoding',
  SCHEMA: 'search_path',
  ROLE: 'role',
  XML: 'xmloption',
};

function readSet(
  sql: string,
  start: number,
  end: number,
  effects: StatementEffects,
  dialect: SqlDialect,
): void {
  const tokens = leadingTokens(sql, 8, start, end, dialect);
  let i = 1;
  if (tokens[i]?.value === 'LOCAL') return;
  if (tokens[i]?.value === 'SESSION') {
    const next = tokens[i + 1]?.value;
    if (next === 'AUTHORIZATION') {
      effects.settings.push('session_authorization');
      return;
    }
    if (next === 'CHARACTERISTICS') {
      effects.settings.push(
        'default_transaction_isolation',
        'default_transaction_read_only',
        'default_transaction_deferrable',
      );
      return;
    }
    i++;
  }
  const first = tokens[i];
  if (!first || first.value === 'TRANSACTION' || first.value === 'CONSTRAINTS') return;
  if (first.kind === 'word' && SPECIAL_SETTINGS[first.value] && tokens[i + 1]?.kind !== 'symbol') {
    effects.settings.push(SPECIAL_SETTINGS[first.value]!);
    return;
  }
  const name = settingNameAt(tokens, i, sql);
  if (name) effects.settings.push(name);
}

/** A setting's name, dotted parts joined, starting at token `at`; null when none is there. */
function settingNameAt(tokens: Token[], at: number, sql: string): string | null {
  const parts = dottedNameAt(tokens, at, sql);
  return parts.length > 0 ? parts.join('.') : null;
}

/** The parts of a dotted name (`schema.table`, `ext.setting`) starting at token `at`. */
function dottedNameAt(tokens: Token[], at: number, sql: string): string[] {
  const parts: string[] = [];
  for (; at < tokens.length; at += 2) {
    const part = tokens[at];
    if (!isName(part)) break;
    parts.push(identifierOf(part!, sql));
    if (tokens[at + 1]?.value !== '.') break;
  }
  return parts;
}

/** `RESET name`, `RESET ALL`, `RESET SESSION AUTHORIZATION`, `RESET TIME ZONE`, ... */
function readReset(
  sql: string,
  start: number,
  end: number,
  effects: StatementEffects,
  dialect: SqlDialect,
): void {
  const tokens = leadingTokens(sql, 8, start, end, dialect);
  const first = tokens[1];
  if (!first) return;
  if (first.value === 'ALL') effects.resets.push('*');
  else if (first.value === 'SESSION' && tokens[2]?.value === 'AUTHORIZATION')
    effects.resets.push('session_authorization');
  else if (first.kind === 'word' && SPECIAL_SETTINGS[first.value] && tokens[2]?.kind !== 'symbol')
    effects.resets.push(SPECIAL_SETTINGS[first.value]!);
  else {
    const name = settingNameAt(tokens, 1, sql);
    if (name) effects.resets.push(name.toLowerCase());
  }
}
