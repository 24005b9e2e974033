#!/bin/sh
# Create one database and one login role per service, each role owning only its own database, so no service
# can read another's tables. The postgres image runs this once, on an empty data directory
# (/docker-entrypoint-initdb.d); run it by hand (PGHOST, PGPORT, PGUSER set) against a fresh managed server.
# Passwords come from BOOKING_DB_PASSWORD, NOTIFY_DB_PASSWORD, CONSULT_DB_PASSWORD and CHECKINS_DB_PASSWORD.
set -eu

for service in booking notify consult checkins; do
  variable=$(printf '%s_DB_PASSWORD' "$service" | tr '[:lower:]' '[:upper:]')
  password=$(printenv "$variable" || true)
  if [ -z "$password" ]; then
    echo "init-databases: $variable is not set" >&2
    exit 1
  fi
  psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname postgres \
    ${POSTGRES_USER:+--username "$POSTGRES_USER"} \
    -v name="$service" -v password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
  echo "init-databases: created database and role $service"
done
