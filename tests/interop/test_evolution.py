"""Interop: a lake evolved by `bakehouse evolve` while it holds data — its sales tables made by an
older definition (no `channel`, daily partitions), then given the column and hourly partitions
between two days of events — read by PyIceberg exactly as a lake built with the new definitions
from the start; and changes Iceberg forbids refused without a commit."""

import datetime as dt
import json
import os
import re
import subprocess

import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import LongType

BIN = os.environ.get("BAKEHOUSE_BIN", "bakehouse")
TODAY = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
SALES_TABLES = ["bronze.sales_events", "silver.sales", "gold.fact_sales", "gold.fact_sales_daily"]
# Stamped by the pipeline at ingestion: the two lakes ingest at different instants.
STAMPED = {"ingestion_time", "lateness_seconds"}


def run(env, *args, ok=True):
    result = subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def lake_env(root):
    root.mkdir()
    return {**os.environ, "BAKEHOUSE_WAREHOUSE": f"file://{root}/warehouse",
            "BAKEHOUSE_CATALOG": f"sqlite:///{root}/catalog.db", "RUST_LOG": "warn"}


def catalog(env):
    return SqlCatalog("bakehouse", uri=env["BAKEHOUSE_CATALOG"].replace("sqlite:///", "sqlite:////"),
                      warehouse=env["BAKEHOUSE_WAREHOUSE"])


def sales(path, prefix, hours_ago, channels):
    """Sales of the sample stores and products; with `channels`, three in four carry one."""
    lines = []
    for i in range(24):
        event = {"event_id": f"{prefix}{i}", "transaction_id": f"{prefix}t{i // 3}",
                 "event_time": (TODAY - dt.timedelta(hours=hours_ago, minutes=2 * i)).isoformat(),
                 "store_id": 1 + i % 5, "product_id": 1 + i % 10, "customer_id": f"C{1 + i % 8:04}",
                 "quantity": 1 + i % 3, "unit_price": 2.5}
        if channels and i % 4:
            event["channel"] = ["in_store", "online", "app"][i % 4 - 1]
        lines.append(json.dumps(event))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def rows(cat, name):
    table = cat.load_table(name).scan().to_arrow()
    kept = [c for c in table.column_names if c not in STAMPED]
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in table.select(kept).to_pylist())


def metadata_locations(cat):
    return {f"{ns[0]}.{t[1]}": cat.load_table(f"{ns[0]}.{t[1]}").metadata_location
            for ns in cat.list_namespaces() for t in cat.list_tables(ns)}


@pytest.fixture(scope="module")
def lakes(tmp_path_factory):
    root = tmp_path_factory.mktemp("evolution")
    old_day = sales(root / "old.jsonl", "o", 28, channels=False)
    new_day = sales(root / "new.jsonl", "n", 3, channels=True)
    evolved, fresh = lake_env(root / "evolved"), lake_env(root / "fresh")

    # The evolved lake: the sales tables as an older definition made them (no channel).
    run(evolved, "init", "--sample")
    cat = catalog(evolved)
    for name in SALES_TABLES:
        table = cat.load_table(name)
        schema = Schema(*[f for f in table.schema().fields if f.name != "channel"])
        spec, properties, location = table.spec(), table.properties, table.location()
        cat.drop_table(name)
        cat.create_table(name, schema=schema, partition_spec=spec, location=location, properties=properties)
    run(evolved, "ingest", "--dataset", "sales-events", old_day)
    run(evolved, "process")
    run(evolved, "maintenance")
    evolve = run(evolved, "evolve", "--partition", "bronze.sales_events=hour,silver.sales=hour")
    run(evolved, "ingest", "--dataset", "sales-events", new_day)
    run(evolved, "process")
    run(evolved, "maintenance")

    # The fresh lake: the same events, the current definitions from the start.
    run(fresh, "init", "--sample")
    for day in (old_day, new_day):
        run(fresh, "ingest", "--dataset", "sales-events", day)
        run(fresh, "process")
        run(fresh, "maintenance")
    return {"evolved": evolved, "fresh": fresh, "evolve_output": evolve.stdout}


def test_the_evolved_tables_have_the_fresh_schema_and_the_new_spec(lakes):
    evolved, fresh = catalog(lakes["evolved"]), catalog(lakes["fresh"])
    for name in SALES_TABLES:
        got = [(f.field_id, f.name, str(f.field_type)) for f in evolved.load_table(name).schema().fields]
        want = [(f.field_id, f.name, str(f.field_type)) for f in fresh.load_table(name).schema().fields]
        assert got == want, name
    assert "silver.sales: partitioned by hour from now on." in lakes["evolve_output"]
    silver = evolved.load_table("silver.sales")
    assert [f.name for f in silver.spec().fields] == ["event_time_hour"]
    assert sorted(s.spec_id for s in silver.specs().values()) == [0, 1]


def test_pyiceberg_reads_the_evolved_lake_as_the_fresh_one(lakes):
    evolved, fresh = catalog(lakes["evolved"]), catalog(lakes["fresh"])
    for name in SALES_TABLES + ["gold.data_quality_daily", "gold.features_demand_daily"]:
        got = rows(evolved, name)
        assert got and got == rows(fresh, name), name
    silver = evolved.load_table("silver.sales").scan().to_arrow().to_pylist()
    channels = {r["event_id"]: r["channel"] for r in silver}
    assert len(channels) == 48
    assert all(channels[f"o{i}"] is None for i in range(24))  # ingested before the column
    assert [channels[f"n{i}"] for i in range(4)] == [None, "in_store", "online", "app"]


def test_sql_reads_old_and_new_rows_together(lakes):
    out = run(lakes["evolved"], "sql",
              "SELECT count(*) AS all_rows, count(channel) AS with_channel FROM silver.sales").stdout
    assert re.search(r"\|\s*48\s*\|\s*18\s*\|", out), out


def test_changes_iceberg_forbids_are_refused_without_a_commit(lakes):
    env = lakes["evolved"]
    cat = catalog(env)
    before = metadata_locations(cat)
    refused = run(env, "evolve", "--partition", "gold.fact_sales=month", ok=False)
    assert refused.returncode != 0
    assert "gold.fact_sales cannot be partitioned by month (partition column business_date; accepted: day)" \
        in refused.stderr, refused.stderr
    assert metadata_locations(cat) == before
    # A column another engine widened: making it int again would narrow it.
    with cat.load_table("bronze.sales_events").update_schema() as update:
        update.update_column("quantity", LongType())
    before = metadata_locations(cat)
    refused = run(env, "evolve", ok=False)
    assert refused.returncode != 0
    assert "column quantity: long → int is not a type promotion" in refused.stderr, refused.stderr
    assert metadata_locations(cat) == before
