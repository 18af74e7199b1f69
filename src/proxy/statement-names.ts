import type { CopyInPlan } from './statement-effects.js';
import type { TransactionControl } from './test-transaction.js';

/** A prepared statement that is transaction control, answered by the proxy under test transactions. */
export interface ControlStatement {
  sql: string;
  control: TransactionControl;
}

/**
 * One client's view of prepared statement and portal names. Named ones get a per-client prefix
 * on their way to the engine, so two clients can both prepare "s1"; the unnamed ones are used
 * within one unit of work and pass as they are.
 */
export class StatementNames {
  private readonly prefix: string;
  /** Named statements the client prepared and has not closed, by the client's name. */
  readonly statements = new Set<string>();
  /** Statements (named or unnamed) whose SQL is a COPY FROM STDIN, by the client's name. */
  private readonly copyStatements = new Map<string, CopyInPlan>();
  /** Portals bound to such a statement. */
  private readonly copyPortals = new Map<string, CopyInPlan>();
  /** Statements the proxy answers itself (transaction control under test transactions), and their portals. */
  private readonly controlStatements = new Map<string, ControlStatement>();
  private readonly controlPortals = new Map<string, ControlStatement>();

  constructor(clientId: number) {
    // The ':' ends the prefix, so no two (client, name) pairs meet on one engine name.
    this.prefix = `p${clientId}:`;
  }

  engineName(name: string): string {
    return name === '' ? '' : this.prefix + name;
  }

  parsed(name: string, copyIn: CopyInPlan | null, control: ControlStatement | null = null): void {
    if (name !== '' && !control) this.statements.add(name);
    if (copyIn) this.copyStatements.set(name, copyIn);
    else this.copyStatements.delete(name);
    if (control) this.controlStatements.set(name, control);
    else this.controlStatements.delete(name);
  }

  bound(portal: string, statement: string): void {
    const plan = this.copyStatements.get(statement);
    if (plan) this.copyPortals.set(portal, plan);
    else this.copyPortals.delete(portal);
    const control = this.controlStatements.get(statement);
    if (control) this.controlPortals.set(portal, control);
    else this.controlPortals.delete(portal);
  }

  closedStatement(name: string): void {
    this.statements.delete(name);
    this.copyStatements.delete(name);
    this.controlStatements.delete(name);
  }

  closedPortal(name: string): void {
    this.copyPortals.delete(name);
    this.controlPortals.delete(name);
  }

  controlStatement(name: string): ControlStatement | undefined {
    return this.controlStatements.get(name);
  }

  controlPortal(name: string): ControlStatement | undefined {
    return this.controlPortals.get(name);
  }

  /** The COPY FROM STDIN plan an Execute of `portal` would run, if any. */
  copyPlanOfPortal(portal: string): CopyInPlan | undefined {
    return this.copyPortals.get(portal);
  }

  /** Engine names of the client's statements, for deallocation when it leaves. */
  engineStatementNames(): string[] {
    return [...this.statements].map((name) => this.prefix + name);
  }
}
