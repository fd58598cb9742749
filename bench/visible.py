"""When events become visible in `gold.fact_sales`, for the event→gold latency case of `make
bench` (run by BENCH_PYTHON: PyIceberg, psycopg2). Two steps, so that watching costs the
machine next to nothing while the pipeline runs:

  visible.py watch CATALOG_URL LOG
      reads the table's catalog pointer (PostgreSQL) every 20 ms and appends
      "<unix seconds> <metadata location>" to LOG at each change, until terminated;
  visible.py probes LOG PREFIX
      afterwards, reads the version behind each pointer seen (in order) and prints, as JSON,
      each probe id (sale_id starting with PREFIX) with its event_time and the time its first
      version was seen: {"id": [event_time_seconds, seen_seconds], ...}.

S3 settings come from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
"""

import json
import os
import signal
import sys
import time

POINTER = "SELECT metadata_location FROM iceberg_tables WHERE table_namespace = 'gold' AND table_name = 'fact_sales'"


def watch(url, log):
    import psycopg2

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    connection = psycopg2.connect(url)
    connection.autocommit = True
    cursor = connection.cursor()
    last = None
    with open(log, "a") as out:
        while True:
            cursor.execute(POINTER)
            row = cursor.fetchone()
            seen = time.time()
            if row and row[0] != last:
                last = row[0]
                out.write(f"{seen:.3f} {last}\n")
                out.flush()
            time.sleep(0.02)


def probes(log, prefix):
    from pyiceberg.expressions import StartsWith
    from pyiceberg.table import StaticTable

    props = {
        "s3.endpoint": os.environ["AWS_ENDPOINT_URL"],
        "s3.region": os.environ["AWS_REGION"],
        "s3.access-key-id": os.environ["AWS_ACCESS_KEY_ID"],
        "s3.secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"],
    }
    first = {}
    with open(log) as lines:
        versions = [line.split(" ", 1) for line in lines.read().splitlines() if line]
    for seen, location in versions:
        table = StaticTable.from_metadata(location, props)
        if table.current_snapshot() is None:
            continue
        rows = table.scan(row_filter=StartsWith("sale_id", prefix), selected_fields=("sale_id", "event_time")).to_arrow()
        for sale_id, at in zip(rows["sale_id"].to_pylist(), rows["event_time"].to_pylist()):
            if sale_id not in first:
                first[sale_id] = [at.timestamp(), float(seen)]
    json.dump(first, sys.stdout)


if __name__ == "__main__":
    if sys.argv[1:2] == ["watch"]:
        watch(*sys.argv[2:4])
    elif sys.argv[1:2] == ["probes"]:
        probes(*sys.argv[2:4])
    else:
        raise SystemExit(__doc__)
