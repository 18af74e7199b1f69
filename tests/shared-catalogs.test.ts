import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRows } from '../src/protocol/backend-rows.js';
import {
  applyFrames,
  changesBetween,
  databasesOf,
  readSharedCatalogs,
  SHARED_CATALOGS_QUERY,
  type SharedCatalogs,
  withChanges,
  withOwnDependencies,
} from '../src/proxy/cluster/shared-catalogs.js';

// Two engines' shared catalogs brought to one state, as the proxy does for the databases of a
// cluster: what one engine changed is merged, and the other is brought to the result.
describe('shared catalogs', () => {
  let first: PGlite;
  let second: PGlite;
  const read = async (engine: PGlite) =>
    readSharedCatalogs(await engine.execProtocolRaw(SHARED_CATALOGS_QUERY));
  const apply = async (engine: PGlite, catalogs: SharedCatalogs) => {
    const { error } = readRows(await engine.execProtocolRaw(applyFrames(catalogs)));
    expect(error?.message).toBeUndefined();
  };

  beforeAll(async () => {
    [first, second] = await Promise.all([PGlite.create(), PGlite.create()]);
  });
  afterAll(async () => {
    await Promise.all([first.close(), second.close()]);
  });

  it('carries roles, memberships, settings, comments, parameter grants and databases over, and back out', async () => {
    const base = await read(first);
    await first.exec(
      "CREATE ROLE alice LOGIN PASSWORD 'x'; CREATE ROLE bob IN ROLE alice; ALTER ROLE alice SET search_path = a, b; " +
        "COMMENT ON ROLE alice IS 'it''s alice'; ALTER DATABASE postgres SET timezone = 'Asia/Tokyo'; " +
        'GRANT SET ON PARAMETER log_statement TO alice',
    );
    await first.exec('CREATE DATABASE other');
    const cluster = withChanges(await read(second), changesBetween(base, await read(first))!);
    await apply(second, cluster);
    expect(changesBetween(cluster, await read(second))).toBeNull();
    expect([...databasesOf(await read(second)).keys()]).toContain('other');
    const { rows } = await second.query<{ member: string; of: string; comment: string; config: string[] }>(
      "SELECT m.rolname AS member, r.rolname AS of, pg_catalog.shobj_description(r.oid, 'pg_authid') AS comment, " +
        's.setconfig AS config FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member ' +
        'JOIN pg_roles r ON r.oid = a.roleid JOIN pg_db_role_setting s ON s.setrole = r.oid',
    );
    expect(rows).toEqual([
      { member: 'bob', of: 'alice', comment: "it's alice", config: ['search_path=a, b'] },
    ]);
    // Brought there again, nothing changes.
    await apply(second, cluster);
    expect(changesBetween(cluster, await read(second))).toBeNull();

    const before = await read(first);
    await first.exec('DROP ROLE bob');
    await first.exec('DROP DATABASE other');
    const after = withChanges(cluster, changesBetween(before, await read(first))!);
    await apply(second, after);
    expect(changesBetween(after, await read(second))).toBeNull();
    expect((await second.query("SELECT 1 FROM pg_roles WHERE rolname = 'bob'")).rows).toEqual([]);
  });

  it("takes a database's own dependencies on roles whole, and brings them to another engine", async () => {
    const base = await read(first);
    await first.exec('CREATE ROLE carol; CREATE TABLE carols (a int); ALTER TABLE carols OWNER TO carol');
    const now = await read(first);
    const cluster = withChanges(base, changesBetween(base, now)!);
    const { rows } = await first.query<{ oid: number }>(
      'SELECT oid FROM pg_database WHERE datname = current_database()',
    );
    const ownOid = rows[0]!.oid;
    expect(withOwnDependencies(cluster, now, ownOid)).toBeNull();
    // An engine's rows replace the cluster's for its database, whatever the cluster had.
    const lacking = withOwnDependencies(cluster, base, ownOid)!;
    expect(lacking.get('pg_shdepend')!.size).toBe(cluster.get('pg_shdepend')!.size - 1);
    expect(withOwnDependencies(lacking, now, ownOid)!.get('pg_shdepend')).toEqual(cluster.get('pg_shdepend'));
    await apply(second, cluster);
    // (Both engines here serve a database of the same oid, so DROP ROLE would look for carols in
    // its own; the proxy's databases have oids of their own, see proxy-cluster.test.ts.)
    const owned = await second.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid WHERE r.rolname = 'carol'",
    );
    expect(owned.rows).toEqual([{ n: 1 }]);
  });
});
