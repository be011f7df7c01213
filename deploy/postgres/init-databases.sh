#!/bin/sh
# Run once by the postgres image when its volume is first initialised (/docker-entrypoint-initdb.d):
# POSTGRES_DB holds Dagster's storage; MLflow's backend store and the source texts get databases of
# their own (MLflow and Dagster both have tables named runs and alembic_version). Safe to rerun.
set -eu
for database in "$MLFLOW_DB" "$SOURCE_DB"; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --set=db="$database" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
done
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$SOURCE_DB" -f "${ARTICLES_SCHEMA:-/opt/topic_pipeline/articles.sql}"
