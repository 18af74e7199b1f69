import type { CopyInPlan } from '../sql/statement-effects.js';
import type { TransactionControl } from '../sql/test-transaction.js';

/** A prepared statement that is transaction control, answered by the proxy under test transactions. */
export interface ControlStatement {
  sql: string;
  control: TransactionControl;
}

/**
 * One client's view of prepared statement and portal names. Statements keep the client's names:
 * the engine gives each client a prepared statement table of its own (see ClientObjects), so
 * pg_prepared_statements shows them as a server would. Named portals get a short engine name of
 * their own (the engine truncates names to 63 bytes, so a prefix on the client's name could make
 * two long names meet): under a test's outer transaction the clients share one portal table.
 * The unnamed ones are used within one unit of work and pass as they are.
 */
export class StatementNames {
  private readonly prefix: string;
  private readonly enginePortalNames = new Map<string, string>();
  /**
   * Named statements the client prepared and has not closed, by name, with their Parse (to
   * prepare them again after an engine reset).
   */
  private readonly open = new Map<string, Buffer | null>();
  /** Statements (named or unnamed) whose SQL is a COPY FROM STDIN, by the client's name. */
  private readonly copyStatements = new Map<string, CopyInPlan>();
  /** Portals bound to such a statement. */
  private readonly copyPortals = new Map<string, CopyInPlan>();
  /** Such portals whose COPY ran: a portal runs once, so another Execute of it is refused. */
  private readonly spentCopyPortals = new Set<string>();
  /** Statements the proxy answers itself (transaction control under test transactions), and their portals. */
  private readonly controlStatements = new Map<string, ControlStatement>();
  private readonly controlPortals = new Map<string, ControlStatement>();

  constructor(clientId: number) {
    this.prefix = `pgo${clientId}`;
  }

  /** The engine's name for the client's portal `name`, the same for as long as the client stays. */
  enginePortalName(name: string): string {
    if (name === '') return '';
    let engineName = this.enginePortalNames.get(name);
    if (engineName === undefined) {
      engineName = `${this.prefix}p${this.enginePortalNames.size + 1}`;
      this.enginePortalNames.set(name, engineName);
    }
    return engineName;
  }

  /** The client has named a portal: an engine error may name it by its engine name. */
  get namesPortals(): boolean {
    return this.enginePortalNames.size > 0;
  }

  /** `text` (of an engine error) with the engine's names of the client's portals put back as the client's. */
  withClientNames(text: string): string {
    if (!text.includes(`"${this.prefix}p`)) return text;
    let named = text;
    for (const [client, engine] of this.enginePortalNames)
      named = named.replaceAll(`"${engine}"`, `"${client}"`);
    return named;
  }

  /** Named statements the client prepared and has not closed, in the order they were parsed. */
  get statements(): Iterable<string> {
    return this.open.keys();
  }

  /** The client parsed statement `name`; `engineParse` is the Parse sent to the engine for it. */
  parsed(
    name: string,
    copyIn: CopyInPlan | null,
    control: ControlStatement | null = null,
    engineParse: Buffer | null = null,
  ): void {
    if (name !== '' && !control) this.open.set(name, engineParse);
    if (copyIn) this.copyStatements.set(name, copyIn);
    else this.copyStatements.delete(name);
    if (control) this.controlStatements.set(name, control);
    else this.controlStatements.delete(name);
  }

  bound(portal: string, statement: string): void {
    this.spentCopyPortals.delete(portal);
    const plan = this.copyStatements.get(statement);
    if (plan) this.copyPortals.set(portal, plan);
    else this.copyPortals.delete(portal);
    const control = this.controlStatements.get(statement);
    if (control) this.controlPortals.set(portal, control);
    else this.controlPortals.delete(portal);
  }

  /** The Parse of every named statement the client has open, in the engine's names. */
  openStatementParses(): Buffer[] {
    return [...this.open.values()].filter((parse) => parse !== null);
  }

  closedStatement(name: string): void {
    this.open.delete(name);
    this.copyStatements.delete(name);
    this.controlStatements.delete(name);
  }

  closedPortal(name: string): void {
    this.spentCopyPortals.delete(name);
    this.copyPortals.delete(name);
    this.controlPortals.delete(name);
  }

  controlStatement(name: string): ControlStatement | undefined {
    return this.controlStatements.get(name);
  }

  controlPortal(name: string): ControlStatement | undefined {
    return this.controlPortals.get(name);
  }

  /** The COPY FROM STDIN plan an Execute of `portal` runs, if any; the portal is spent by it. */
  executeCopyPortal(portal: string): CopyInPlan | undefined {
    const plan = this.copyPortals.get(portal);
    if (plan) {
      this.copyPortals.delete(portal);
      this.spentCopyPortals.add(portal);
    }
    return plan;
  }

  isSpentCopyPortal(portal: string): boolean {
    return this.spentCopyPortals.has(portal);
  }

  /** The engine's transaction ended, and every portal with it. */
  transactionEnded(): void {
    this.copyPortals.clear();
    this.spentCopyPortals.clear();
  }
}
