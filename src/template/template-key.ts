import { createHash } from 'node:crypto';
import path from 'node:path';
import { clusterCacheKey } from '../install/cluster-cache.js';
import { standardEnv } from '../runtime/env.js';
import type { SqlFile } from './sources.js';

export interface TemplateKeyInput {
  migrations: SqlFile[];
  seed: SqlFile[];
  env: Record<string, string>;
  settings: Record<string, string | number | boolean>;
  /** Source of a setup function and a caller-given key: what a function will do cannot be hashed. */
  extra: string[];
}

/**
 * A template is reused while nothing that shaped it changed: the engine and its cluster, the
 * settings and environment it ran with, the name, order and content of every migration and seed
 * file. Any change gives a new key, and so a rebuild.
 */
export function templateKey(input: TemplateKeyInput): string {
  const hash = createHash('sha256');
  const add = (label: string, value: string) => hash.update(`${label}\0${value}\0`);
  add('cluster', clusterCacheKey());
  // The database the migrations run in: the default's name changed once, from template1.
  add('database', input.env.PGDATABASE ?? standardEnv().PGDATABASE);
  for (const [name, value] of Object.entries(input.env).sort()) add(`env:${name}`, value);
  for (const [name, value] of Object.entries(input.settings).sort()) add(`setting:${name}`, String(value));
  for (const file of input.migrations) add(`migration:${path.basename(file.path)}`, file.sql);
  for (const file of input.seed) add(`seed:${path.basename(file.path)}`, file.sql);
  for (const value of input.extra) add('extra', value);
  return hash.digest('hex').slice(0, 16);
}
