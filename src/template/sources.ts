import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { InvalidInputError } from '../errors.js';

/** One SQL file of migrations or seed, with its content read once. */
export interface SqlFile {
  path: string;
  sql: string;
}

/**
 * The SQL files named by a list of files and directories, in order: a directory contributes its
 * `.sql` files sorted by name with numbers compared as numbers (so 2_x.sql runs before 10_y.sql).
 */
export function readSqlFiles(sources: string | readonly string[] | undefined): SqlFile[] {
  const list = sources === undefined ? [] : typeof sources === 'string' ? [sources] : sources;
  return list.flatMap((source) => {
    const resolved = path.resolve(source);
    if (!existsSync(resolved)) throw new InvalidInputError(`No such migration or seed path: ${resolved}`);
    const files = statSync(resolved).isDirectory()
      ? readdirSync(resolved)
          .filter((name) => name.endsWith('.sql'))
          .sort(new Intl.Collator('en', { numeric: true }).compare)
          .map((name) => path.join(resolved, name))
      : [resolved];
    return files.map((file) => ({ path: file, sql: readFileSync(file, 'utf8') }));
  });
}
