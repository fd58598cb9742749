"""Interop: `bakehouse maintenance` read back through PyIceberg, on an SQLite catalog, a
PostgreSQL catalog and an S3 warehouse. SCD Type 2 versions are computed here from the
reference CSVs with SPEC §5's rules; compaction must keep every row of every table; expiry and
orphan removal must leave every live snapshot readable."""

import csv
import datetime as dt
import io
import json
import os
import pathlib
from collections import Counter, defaultdict

import pytest
from pyiceberg.catalog.sql import SqlCatalog

from test_pyiceberg import catalog_uris, cli, warehouse

REFERENCE = pathlib.Path(__file__).resolve().parents[2] / "shared" / "reference"
STORE_COLUMNS = ["name", "city", "region", "opening_hour", "closing_hour", "manager"]
TABLES = [
    "bronze.sales_events", "bronze.equipment_metrics", "bronze.inventory_updates", "bronze.stores",
    "bronze.products", "bronze.customers", "bronze.equipment", "bronze.quarantine", "silver.sales",
    "silver.equipment_metrics", "silver.inventory", "gold.fact_sales", "gold.fact_sales_daily",
    "gold.fact_inventory", "gold.fact_equipment_performance", "gold.dim_store", "gold.dim_product",
    "gold.dim_customer", "gold.dim_equipment", "gold.data_quality_daily", "gold.late_arrivals_daily",
    "bronze.weather", "silver.weather", "gold.dim_weather", "gold.features_demand_daily",
]


def now_iso():
    return dt.datetime.now(dt.timezone.utc).isoformat()


def read_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def changed_stores():
    """Store 1 gets a new manager, store 5 is gone, store 6 is new."""
    stores = read_csv((REFERENCE / "stores.csv").read_text())
    out = []
    for s in stores:
        if s["store_id"] == "5":
            continue
        if s["store_id"] == "1":
            s = {**s, "manager": "Zoe Park"}
        out.append(s)
    out.append({"store_id": "6", "name": "Lakeside Bakery", "city": "Madison", "region": "Central",
                "opening_hour": "06:00", "closing_hour": "19:00", "manager": "Femi Ade"})
    return out


def to_csv(rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def scd2(snapshots, id_column, attributes):
    """SPEC §5 applied to (time, rows) snapshots in order: the versions as
    (id, attributes, valid_from, valid_to)."""
    versions = []
    for at, snapshot in snapshots:
        latest = {r[id_column]: tuple(r[a] for a in attributes) for r in snapshot}
        current = {v[0]: v for v in versions if v[3] is None}
        for vid, v in current.items():
            if latest.get(vid) != v[1]:
                versions[versions.index(v)] = (v[0], v[1], v[2], at)
                if vid in latest:
                    versions.append((vid, latest[vid], at, None))
        for vid, attrs in latest.items():
            if vid not in current:
                versions.append((vid, attrs, at, None))
    return sorted(versions, key=lambda v: (v[0], v[2]))


def arrow_rows(table, columns=None):
    data = table.scan().to_arrow()
    return data.select(columns).to_pylist() if columns else data.to_pylist()


def micros(value):
    return None if value is None else int(value.timestamp() * 1_000_000)


def sales_file(path, prefix, count, store_id):
    lines = [json.dumps({"event_id": f"{prefix}-{i}", "transaction_id": f"{prefix}-t{i}", "event_time": now_iso(),
                         "store_id": store_id, "product_id": 2, "quantity": 1, "unit_price": 7.25})
             for i in range(count)]
    path.write_text("\n".join(lines) + "\n")


def all_rows(catalog):
    """Every row of every table, as a multiset per table."""
    return {name: Counter(json.dumps(r, sort_keys=True, default=str) for r in arrow_rows(catalog.load_table(name)))
            for name in TABLES}


@pytest.fixture(scope="module", params=["sqlite", "postgres", "s3"])
def lake(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("maint")
    finalizers = []
    request.addfinalizer(lambda: [f() for f in finalizers])
    ours, theirs = catalog_uris("postgres" if request.param == "postgres" else "sqlite", root, finalizers)
    location, s3_env, s3_props = warehouse(request.param, root)
    env = {**os.environ, **s3_env, "BAKEHOUSE_WAREHOUSE": location, "BAKEHOUSE_CATALOG": ours}
    land = root / "landing"
    for d in ["stores", "products", "sales-events"]:
        (land / d).mkdir(parents=True)
    state = {"env": env, "land": land, "root": root, "location": location}

    cli(env, "init", "--sample")                         # the sample reference snapshot
    sales_file(land / "sales-events" / "before.jsonl", "before", 4, 1)
    cli(env, "ingest", str(land / "sales-events" / "before.jsonl"))
    cli(env, "process")
    cli(env, "maintenance")
    cli(env, "maintenance")

    # The changed snapshots: stores (manager, gone, new) and products (a price change).
    (land / "stores" / "stores-v2.csv").write_text(to_csv(changed_stores()))
    products = read_csv((REFERENCE / "products.csv").read_text())
    products = [{**p, "list_price": "7.75"} if p["product_id"] == "2" else p for p in products]
    (land / "products" / "products-v2.csv").write_text(to_csv(products))
    cli(env, "ingest", str(land / "stores" / "stores-v2.csv"), str(land / "products" / "products-v2.csv"))
    sales_file(land / "sales-events" / "after.jsonl", "after", 3, 1)
    cli(env, "ingest", str(land / "sales-events" / "after.jsonl"))
    cli(env, "process")
    state["first"] = json.loads(cli(env, "maintenance", "--json"))
    state["second"] = json.loads(cli(env, "maintenance", "--json"))

    # Thirty small ingests, processed, then maintenance.
    for n in range(30):
        path = land / "sales-events" / f"small-{n:02}.jsonl"
        sales_file(path, f"small{n}", 5, 1 + n % 4)
        cli(env, "ingest", str(path))
    cli(env, "process")
    catalog = SqlCatalog("bakehouse", uri=theirs, warehouse=location, **s3_props)
    state["catalog"] = catalog
    return state


def test_dimensions_hold_exactly_the_scd2_versions_of_the_snapshots(lake):
    catalog = lake["catalog"]
    bronze = arrow_rows(catalog.load_table("bronze.stores"))
    times = sorted({micros(r["ingestion_time"]) for r in bronze})
    assert len(times) == 2
    default = read_csv((REFERENCE / "stores.csv").read_text())
    expected = scd2([(times[0], default), (times[1], changed_stores())], "store_id", STORE_COLUMNS)
    dim = arrow_rows(catalog.load_table("gold.dim_store"))
    got = sorted(((str(r["store_id"]), tuple(r[a] for a in STORE_COLUMNS), micros(r["valid_from"]),
                   micros(r["valid_to"])) for r in dim), key=lambda v: (v[0], v[2]))
    assert got == expected
    assert len(expected) == 7
    # Invariants: unique keys, is_current ⇔ open, one current version per id, no overlaps.
    assert len({r["store_key"] for r in dim}) == len(dim)
    assert all(r["is_current"] == (r["valid_to"] is None) for r in dim)
    current = Counter(r["store_id"] for r in dim if r["is_current"])
    assert set(current.values()) == {1} and set(current) == {1, 2, 3, 4, 6}
    by_id = defaultdict(list)
    for r in dim:
        by_id[r["store_id"]].append((micros(r["valid_from"]), micros(r["valid_to"])))
    for spans in by_id.values():
        spans.sort()
        for (a_from, a_to), (b_from, _) in zip(spans, spans[1:]):
            assert a_from < a_to <= b_from

    products = arrow_rows(catalog.load_table("gold.dim_product"))
    two = sorted((r for r in products if r["product_id"] == 2), key=lambda r: micros(r["valid_from"]))
    assert [(str(r["list_price"]), r["is_current"]) for r in two] == [("7.25", False), ("7.75", True)]
    assert len(products) == 11
    assert len(arrow_rows(catalog.load_table("gold.dim_customer"))) == len(
        read_csv((REFERENCE / "customers.csv").read_text()))


def test_the_first_run_opened_and_closed_versions_and_the_second_did_nothing(lake):
    first = {t["table"]: t for t in lake["first"]["tables"]}
    assert (first["gold.dim_store"]["versions_opened"], first["gold.dim_store"]["versions_closed"]) == (2, 2)
    assert (first["gold.dim_product"]["versions_opened"], first["gold.dim_product"]["versions_closed"]) == (1, 1)
    assert lake["second"]["commits"] == 0


def test_fact_keys_are_the_versions_valid_at_event_time(lake):
    catalog = lake["catalog"]
    dim = arrow_rows(catalog.load_table("gold.dim_store"))
    facts = arrow_rows(catalog.load_table("gold.fact_sales"))

    def valid_key(store_id, at):
        versions = sorted((r for r in dim if r["store_id"] == store_id), key=lambda r: r["valid_from"])
        if versions and at < versions[0]["valid_from"]:
            return versions[0]["store_key"]   # the first version covers every earlier event
        keys = [r["store_key"] for r in versions if r["valid_from"] <= at
                and (r["valid_to"] is None or at < r["valid_to"])]
        return keys[0] if keys else None

    assert len(facts) == 4 + 3 + 150
    for f in facts:
        assert f["store_key"] == valid_key(f["store_id"], f["event_time"]), f["sale_id"]
    before = {f["store_key"] for f in facts if f["sale_id"].startswith("before-")}
    after = {f["store_key"] for f in facts if f["sale_id"].startswith("after-")}
    assert len(before) == len(after) == 1 and before != after   # store 1's old and new versions


def test_maintenance_compacts_to_one_file_per_partition_with_identical_rows(lake):
    catalog, env = lake["catalog"], lake["env"]
    before = all_rows(catalog)
    files_before = sum(len(catalog.load_table(n).inspect.files()) for n in TABLES)
    cli(env, "maintenance")
    catalog = lake["catalog"]
    after = all_rows(catalog)
    # Reports are recomputed for the new day's rows; every other table is row-for-row the same.
    for name in TABLES:
        if name not in ("gold.data_quality_daily", "gold.late_arrivals_daily"):
            assert after[name] == before[name], name
    files_after = 0
    for name in TABLES:
        files = catalog.load_table(name).inspect.files().to_pylist()
        files_after += len(files)
        per_partition = Counter(json.dumps(f["partition"], sort_keys=True, default=str) for f in files)
        assert all(n == 1 for n in per_partition.values()), (name, per_partition)
        assert all(f["file_size_in_bytes"] < 16 * 1024 * 1024 for f in files), name
    assert files_after < files_before
    quality = [r for r in arrow_rows(catalog.load_table("gold.data_quality_daily")) if r["dataset"] == "sales-events"]
    assert sum(r["records"] for r in quality) == 157 and sum(r["gold_eligible"] for r in quality) == 157


def test_expiry_and_orphan_removal_leave_every_live_snapshot_readable(lake):
    catalog, env = lake["catalog"], lake["env"]
    current = all_rows(catalog)
    aggressive = {**env, "BAKEHOUSE_SNAPSHOT_RETENTION_DAYS": "0", "BAKEHOUSE_SNAPSHOTS_KEPT": "2",
                  "BAKEHOUSE_ORPHAN_AGE_HOURS": "0"}
    report = json.loads(cli(aggressive, "maintenance", "--json"))
    assert sum(t["snapshots_expired"] for t in report["tables"]) > 30
    assert sum(t["orphans_deleted"] for t in report["tables"]) > 30
    for name in TABLES:
        table = catalog.load_table(name)
        snapshots = table.snapshots()
        assert len(snapshots) <= 2, name
        for snapshot in snapshots:
            data = table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()
            assert data.num_rows == int(snapshot.summary["total-records"]), name
    assert all_rows(catalog) == current
    if lake["location"].startswith("file://"):
        # Nothing unreferenced is left on disk: every data file is one a live snapshot reads.
        on_disk = {str(p) for p in pathlib.Path(lake["location"][len("file://"):]).rglob("*.parquet")}
        live = set()
        for name in TABLES:
            table = catalog.load_table(name)
            for snapshot in table.snapshots():
                for task in table.scan(snapshot_id=snapshot.snapshot_id).plan_files():
                    live.add(task.file.file_path[len("file://"):])
        assert on_disk == live
