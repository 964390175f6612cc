#!/usr/bin/env bash
# Starts the machine's PostgreSQL cluster (Debian's pg_ctlcluster) and makes sure the test role exists,
# then prints the URL to export as BMS_TEST_POSTGRES_URL. Needs root. Safe to run again.
set -euo pipefail
# Only the URL goes to stdout (callers capture it); whatever the tools print ("Removed stale pid
# file", apt progress) goes to stderr.
exec 3>&1 1>&2

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
  pg_ctlcluster "$version" main start 3>&- # the server must not hold the caller's pipe open
fi
for _ in $(seq 1 30); do
  su postgres -c "psql -qAtc 'SELECT 1'" >/dev/null 2>&1 && break
  sleep 1
done
# The tests create and drop one database per test, so the role needs CREATEDB.
su postgres -c "psql -qAtc \"DO \\\$\\\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bms_test') THEN
    CREATE ROLE bms_test LOGIN CREATEDB PASSWORD 'bms_test';
  END IF;
END \\\$\\\$;\"" >/dev/null
su postgres -c "psql -qAtc \"SELECT 1 FROM pg_database WHERE datname = 'bms_test'\"" | grep -q 1 \
  || su postgres -c "createdb -O bms_test bms_test"
echo "postgres://bms_test:bms_test@127.0.0.1:5432/bms_test" >&3
