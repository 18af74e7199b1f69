/** What a test file needs to use a hosted database. */
export interface HostedDatabaseInfo {
  connectionString: string;
  /** DATABASE_URL and the libpq PG* variables. */
  env: Record<string, string>;
  /** Address of the database's own control socket (isolation calls, raw wire access). */
  control: string;
}

export type WorkerToMain =
  | { type: 'ready'; info: HostedDatabaseInfo }
  | { type: 'failed'; reason: string }
  | { type: 'recycled'; ok: boolean; reason?: string };

export type MainToWorker = { type: 'recycle' } | { type: 'close' };
