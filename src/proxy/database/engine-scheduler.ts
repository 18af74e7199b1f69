/** Why a queued client did not get the engine. */
export class EngineWaitError extends Error {
  constructor(
    readonly sqlstate: string,
    message: string,
  ) {
    super(message);
    this.name = 'EngineWaitError';
  }
}

/**
 * How long a client waits for the engine: its own lock_timeout or statement_timeout when it set
 * one (a server's statement waiting for a lock ends at either), else the proxy's queueTimeoutMs.
 */
export interface WaitLimit {
  ms: number;
  by: 'lock_timeout' | 'statement_timeout' | 'queueTimeoutMs';
}

interface Waiter<Client> {
  client: Client;
  resolve: () => void;
  reject: (error: EngineWaitError) => void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Who may use the single engine session right now. A client holds it for one unit of work, or
 * for as long as it stays pinned (open transaction, unfinished extended batch, COPY); the others
 * wait first come, first served.
 */
export class EngineScheduler<Client> {
  /**
   * `describeHolder` says who keeps a waiter out, for its timeout error; `queued` hears of each
   * client that begins to wait, with the holder it waits for.
   */
  constructor(
    private readonly describeHolder: (holder: Client) => string = () => 'another client',
    private readonly queued: (holder: Client) => void = () => {},
  ) {}

  private owner: Client | null = null;
  private readonly waiters: Waiter<Client>[] = [];
  private closedWith: EngineWaitError | null = null;

  get holder(): Client | null {
    return this.owner;
  }

  /** Whether any client is queued for the engine. */
  get anyWaiting(): boolean {
    return this.waiters.length > 0;
  }

  /** Whether `client` is queued for the engine. */
  isWaiting(client: Client): boolean {
    return this.waiters.some((waiter) => waiter.client === client);
  }

  /**
   * Gives `client` the engine, or queues it for at most `limit` (ms, or a limit worked out when
   * it has to wait). Returns null when it got it at once (the hot path takes no
   * promise), otherwise a promise that settles when its turn comes or its wait ends.
   */
  acquire(client: Client, limit: number | WaitLimit | (() => WaitLimit)): Promise<void> | null {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (this.owner === client) return null;
    if (this.owner === null && this.waiters.length === 0) {
      this.owner = client;
      return null;
    }
    // Worked out only when it has to wait: the hot path takes the engine at once.
    const { ms, by } =
      typeof limit === 'number'
        ? { ms: limit, by: 'queueTimeoutMs' }
        : typeof limit === 'function'
          ? limit()
          : limit;
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter<Client> = { client, resolve, reject, timer: undefined };
      if (ms > 0 && Number.isFinite(ms)) {
        waiter.timer = setTimeout(() => {
          this.drop(waiter);
          const holder = this.owner === null ? 'another client' : this.describeHolder(this.owner);
          reject(
            new EngineWaitError(
              by === 'statement_timeout' ? '57014' : '55P03',
              `waited ${ms} ms (${by}) for ${holder}: one engine runs one transaction at a time, so commit or roll back that transaction first`,
            ),
          );
        }, ms);
      }
      this.waiters.push(waiter);
      if (this.owner !== null) this.queued(this.owner);
    });
  }

  /**
   * Gives `client` the engine now, taking it from a holder that stays pinned between its units
   * (a client idle in a transaction the caller is about to end under it).
   */
  seize(client: Client): void {
    if (this.closedWith) throw this.closedWith;
    this.owner = client;
  }

  /** Ends `client`'s hold unless it stays pinned; the next waiter gets the engine. */
  release(client: Client, pinned: boolean): void {
    if (this.owner !== client || pinned) return;
    this.owner = null;
    this.handOver();
  }

  /** Ends a queued wait of `client` with `error`; returns whether it was waiting. */
  cancel(client: Client, error: EngineWaitError): boolean {
    const waiter = this.waiters.find((candidate) => candidate.client === client);
    if (!waiter) return false;
    this.drop(waiter);
    waiter.reject(error);
    return true;
  }

  /** Forgets `client` entirely: its waits end and its hold is released. */
  forget(client: Client, error: EngineWaitError): void {
    this.cancel(client, error);
    this.release(client, false);
  }

  /** Refuses every current and future wait. */
  close(error: EngineWaitError): void {
    this.closedWith = error;
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.owner = null;
  }

  private drop(waiter: Waiter<Client>): void {
    clearTimeout(waiter.timer);
    const index = this.waiters.indexOf(waiter);
    if (index >= 0) this.waiters.splice(index, 1);
  }

  private handOver(): void {
    const next = this.waiters.shift();
    if (!next) return;
    clearTimeout(next.timer);
    this.owner = next.client;
    next.resolve();
  }
}
