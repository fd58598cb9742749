#!/usr/bin/env bash
# `make up`: installs when missing, then starts on 127.0.0.1 PostgreSQL (the catalog), the S3
# server (bucket `lake`) and the Kafka broker (three topics, 3 partitions each). Idempotent.
# Prints the environment to export for `bakehouse` (the pipeline on S3 + PostgreSQL + Kafka).
#   eval "$(dev/up.sh)"      dev/up.sh stop
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-start}" = stop ]; then
  ./kafka.sh stop
  ./s3.sh stop
  ./postgres.sh stop
  exit 0
fi
pg=$(./postgres.sh start)
s3=$(./s3.sh start)
kafka=$(./kafka.sh start)
for pair in $s3 $kafka; do echo "export $pair"; done
echo "export BAKEHOUSE_CATALOG=$pg"
echo "export BAKEHOUSE_WAREHOUSE=s3://lake/warehouse"
