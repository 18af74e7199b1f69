import pg from 'pg';

/** Runs `sql` on a fresh pg connection to `connectionString` and returns its rows. */
export async function queryRows(
  connectionString: string,
  sql: string,
): Promise<Array<Record<string, unknown>>> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

/** `connectionString` for another user (pg lets the string's user win over a `user` option). */
export function asUser(connectionString: string, user: string): string {
  const url = new URL(connectionString);
  url.username = user;
  return url.href;
}
