import {
  identifierOf,
  type SqlDialect,
  STANDARD_DIALECT,
  splitStatements,
  type Token,
  tokensOf,
} from '../../protocol/sql-lexer.js';
import { quoteIdent } from '../../protocol/sql-quote.js';

const MENTIONS_PREPARED = /prepare|execute|deallocate/i;

/**
 * A client's SQL with the names of its SQL-level prepared statements (PREPARE, EXECUTE,
 * DEALLOCATE, EXPLAIN ... EXECUTE, CREATE TABLE ... AS EXECUTE) replaced by its own engine names,
 * so that two clients may both PREPARE "q" in the one engine session. Null when it names none.
 */
export function withOwnPreparedNames(
  sql: string,
  engineName: (name: string) => string,
  dialect: SqlDialect = STANDARD_DIALECT,
): string | null {
  if (!MENTIONS_PREPARED.test(sql)) return null;
  const names: Token[] = [];
  for (const [start, end] of splitStatements(sql, dialect)) {
    const tokens = tokensOf(sql, start, end, dialect);
    const name = preparedNameIn(tokens);
    if (name) names.push(name);
  }
  if (names.length === 0) return null;
  let out = '';
  let from = 0;
  for (const token of names) {
    out += sql.slice(from, token.start) + quoteIdent(engineName(identifierOf(token, sql)));
    from = token.end;
  }
  return out + sql.slice(from);
}

/** The token naming a prepared statement in one statement's tokens, if it names one. */
function preparedNameIn(tokens: Token[]): Token | null {
  const word = (at: number) => (tokens[at]?.kind === 'word' ? tokens[at]!.value : '');
  const nameAt = (at: number) => {
    const token = tokens[at];
    return token && (token.kind === 'word' || token.kind === 'identifier') ? token : null;
  };
  switch (word(0)) {
    case 'PREPARE':
      return word(1) === 'TRANSACTION' ? null : nameAt(1);
    case 'EXECUTE':
      return nameAt(1);
    case 'DEALLOCATE': {
      const at = word(1) === 'PREPARE' ? 2 : 1;
      return word(at) === 'ALL' ? null : nameAt(at);
    }
    case 'EXPLAIN':
    case 'CREATE': {
      // EXECUTE at the top level: not a trigger's EXECUTE FUNCTION, nor text in a function body.
      for (let at = 1; at < tokens.length - 1; at++) {
        if (tokens[at]!.depth !== 0 || word(at) !== 'EXECUTE') continue;
        if (word(at + 1) === 'FUNCTION' || word(at + 1) === 'PROCEDURE') return null;
        return nameAt(at + 1);
      }
      return null;
    }
    default:
      return null;
  }
}
