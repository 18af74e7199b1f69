import type { Template, TemplateOptions } from '../src/template/prepare-template.js';

/** How each test is kept apart from the others in a file. */
export type Isolation = 'reset' | 'none';

export interface PgliteVitestOptions extends TemplateOptions {
  /** `reset` (default): every test starts from the template state. `none`: tests share the database. */
  isolation?: Isolation;
}

export interface ProvidedDatabase {
  template: Template;
  isolation: Isolation;
}

export const PROVIDE_KEY = 'pglite-oxide';

declare module 'vitest' {
  interface ProvidedContext {
    'pglite-oxide': ProvidedDatabase;
  }
}

// The config and the global setup run in the same process but may load this package twice (the
// config bundler and the setup loader resolve it apart), so the options travel on globalThis.
const REGISTRY = Symbol.for('pglite-oxide.vitest.options');

export function registerOptions(options: PgliteVitestOptions): void {
  (globalThis as Record<symbol, unknown>)[REGISTRY] = options;
}

export function takeRegisteredOptions(): PgliteVitestOptions {
  return ((globalThis as Record<symbol, unknown>)[REGISTRY] as PgliteVitestOptions | undefined) ?? {};
}
