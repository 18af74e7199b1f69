import { describe, expect, it } from 'vitest';
import { withOwnPreparedNames } from '../src/proxy/sql/sql-prepared.js';

const mine = (name: string) => `pgo7q_${name}`;

describe('withOwnPreparedNames', () => {
  it("gives the names of PREPARE, EXECUTE and DEALLOCATE the client's own engine names", () => {
    expect(
      withOwnPreparedNames('PREPARE q (int) AS SELECT $1; EXECUTE q(1); DEALLOCATE PREPARE q', mine),
    ).toBe('PREPARE "pgo7q_q" (int) AS SELECT $1; EXECUTE "pgo7q_q"(1); DEALLOCATE PREPARE "pgo7q_q"');
    // Names fold as identifiers do; quoted ones keep their case.
    expect(withOwnPreparedNames('execute Find_Me; deallocate "Quoted"', mine)).toBe(
      'execute "pgo7q_find_me"; deallocate "pgo7q_Quoted"',
    );
  });

  it('finds EXECUTE inside EXPLAIN and CREATE TABLE AS, not in a trigger or a function body', () => {
    expect(withOwnPreparedNames('EXPLAIN (ANALYZE, COSTS OFF) EXECUTE q(2)', mine)).toBe(
      'EXPLAIN (ANALYZE, COSTS OFF) EXECUTE "pgo7q_q"(2)',
    );
    expect(withOwnPreparedNames('CREATE TEMP TABLE t AS EXECUTE q(3)', mine)).toBe(
      'CREATE TEMP TABLE t AS EXECUTE "pgo7q_q"(3)',
    );
    expect(
      withOwnPreparedNames('CREATE TRIGGER t AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION f()', mine),
    ).toBeNull();
    expect(
      withOwnPreparedNames(
        "CREATE FUNCTION f() RETURNS void AS $$ BEGIN EXECUTE 'x'; END $$ LANGUAGE plpgsql",
        mine,
      ),
    ).toBeNull();
  });

  it('leaves everything else alone', () => {
    expect(withOwnPreparedNames('SELECT 1', mine)).toBeNull();
    expect(withOwnPreparedNames('DEALLOCATE ALL', mine)).toBeNull();
    expect(withOwnPreparedNames('PREPARE TRANSACTION $$x$$', mine)).toBeNull();
    expect(withOwnPreparedNames("SELECT 'EXECUTE q'", mine)).toBeNull();
  });
});
