/** What a Jest test file gets: its own database, leased by the environment for the file. */
export interface PgliteFixture {
  connectionString: string;
  /** DATABASE_URL and PG* for this file's database (also set in process.env). */
  env: Record<string, string>;
  /** Raw wire access to this file's engine (SQL string or frontend message bytes). */
  execInteractive(input: string | Uint8Array): Promise<Uint8Array>;
  /** Puts the database back to the template state now, whatever the isolation. */
  reset(): Promise<void>;
}

/** The sandbox global the environment puts this file's fixture on. */
export const SANDBOX_GLOBAL = '__pgliteOxide__';
