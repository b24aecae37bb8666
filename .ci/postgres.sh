# Sourced by .ci/run: a PostgreSQL server for the history store's tests (tests/test_history_store.py
# fails in CI without one). Idempotent: an installed package, a running cluster, an existing role
# and database are left as they are. Exports I2V_TEST_POSTGRES_URL.
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
pg_version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h | grep -q "^${pg_version} main "; then
  pg_createcluster "${pg_version}" main >/dev/null
fi
if ! pg_lsclusters -h | grep -q "^${pg_version} main .* online"; then
  pg_ctlcluster "${pg_version}" main start
fi
# A CI-only password on a server that listens on localhost alone.
i2v_pg_password="i2v-ci-only"
su postgres -c "psql -q -v ON_ERROR_STOP=1" <<SQL
SELECT 'CREATE ROLE i2v LOGIN CREATEDB PASSWORD ''${i2v_pg_password}'''
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'i2v') \gexec
ALTER ROLE i2v LOGIN CREATEDB PASSWORD '${i2v_pg_password}';
SELECT 'CREATE DATABASE i2v_test OWNER i2v'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'i2v_test') \gexec
SQL
# The tests make (and drop) a database of their own each: the role has CREATEDB.
export I2V_TEST_POSTGRES_URL="postgresql://i2v:${i2v_pg_password}@localhost:5432/i2v_test"
