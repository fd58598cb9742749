"""The Python peer of `make bench`: the pipeline as an AWS user would write it with pyarrow and
PyIceberg (SQLite catalog, local warehouse), one hop per process, like a Lambda invocation.

  peer.py LAKE ingest-clean FILE   vectorized: pyarrow's multithreaded JSON reader, one append
  peer.py LAKE ingest-dirty FILE   line by line: parse and validate each record, quarantine the
                                   bad ones with a reason (one bad line fails pyarrow's reader)
  peer.py LAKE silver              bronze -> silver: first copy of each event_id across all of
                                   silver, revenue, quality flags
  peer.py LAKE gold                silver -> gold: a fact per sale line, and revenue and quantity
                                   per day, store and product

Both ingest modes keep what ours keeps: typed fields, the raw payload, and lineage (source,
source_ref, ingestion_time).
"""

import datetime as dt
import decimal
import json
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError

SALES = pa.schema(
    [
        ("event_id", pa.string()),
        ("transaction_id", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("store_id", pa.int32()),
        ("product_id", pa.int32()),
        ("customer_id", pa.string()),
        ("quantity", pa.int32()),
        ("unit_price", pa.decimal128(10, 2)),
        ("promotion_id", pa.string()),
    ]
)
LINEAGE = [
    ("payload", pa.string()),
    ("source", pa.string()),
    ("source_ref", pa.string()),
    ("ingestion_time", pa.timestamp("us", tz="UTC")),
]
BRONZE = pa.schema(list(SALES) + [pa.field(n, t) for n, t in LINEAGE])
QUARANTINE = pa.schema(
    [
        ("dataset", pa.string()),
        ("error_code", pa.string()),
        ("raw", pa.string()),
        ("source_ref", pa.string()),
        ("ingestion_time", pa.timestamp("us", tz="UTC")),
    ]
)


def catalog(lake):
    cat = SqlCatalog("peer", uri=f"sqlite:///{lake}/catalog.db", warehouse=f"file://{lake}/warehouse")
    for ns in ("bronze", "silver", "gold"):
        try:
            cat.create_namespace(ns)
        except NamespaceAlreadyExistsError:
            pass
    return cat


def table(cat, name, schema):
    try:
        return cat.load_table(name)
    except NoSuchTableError:
        return cat.create_table(name, schema=schema)


def now():
    return dt.datetime.now(dt.timezone.utc)


def ingest_clean(lake, path):
    events = pj.read_json(path, parse_options=pj.ParseOptions(explicit_schema=SALES))
    with open(path, "rb") as f:
        payload = pa.array(f.read().decode().splitlines(), pa.string())
    n = events.num_rows
    bronze = events.append_column("payload", payload)
    bronze = bronze.append_column("source", pa.array(["file"] * n, pa.string()))
    refs = pc.binary_join_element_wise(pa.array([path] * n), pc.cast(pa.array(range(1, n + 1)), pa.string()), ":")
    bronze = bronze.append_column("source_ref", refs)
    bronze = bronze.append_column("ingestion_time", pa.array([now()] * n, pa.timestamp("us", tz="UTC")))
    table(catalog(lake), "bronze.sales_events", BRONZE).append(bronze)
    print(n)


REQUIRED = {"event_id": str, "event_time": str, "store_id": int, "product_id": int, "quantity": int, "unit_price": (int, float)}
OPTIONAL = {"transaction_id": str, "customer_id": str, "promotion_id": str}


def validate(line):
    """The record's typed fields, or the reason it is rejected (SPEC §3's schema checks)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None, "not_json"
    if not isinstance(record, dict):
        return None, "not_object"
    for name, kind in REQUIRED.items():
        value = record.get(name)
        if value is None:
            return None, "missing_field"
        if not isinstance(value, kind) or isinstance(value, bool):
            return None, "wrong_type"
    for name, kind in OPTIONAL.items():
        value = record.get(name)
        if value is not None and not isinstance(value, kind):
            return None, "wrong_type"
    if not 1 <= len(record["event_id"]) <= 64:
        return None, "bad_id"
    try:
        at = dt.datetime.fromisoformat(record["event_time"])
    except ValueError:
        return None, "bad_timestamp"
    if at.tzinfo is None:
        return None, "bad_timestamp"
    price = decimal.Decimal(str(record["unit_price"]))
    if price.as_tuple().exponent < -2 or abs(price) >= 10**8:
        return None, "bad_decimal"
    row = {name: record.get(name) for name in SALES.names}
    row["event_time"] = at
    row["unit_price"] = price
    return row, None


def ingest_dirty(lake, path):
    rows, rejects = [], []
    at = now()
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            ref = f"{path}:{number}"
            row, reason = validate(line)
            if reason:
                rejects.append({"dataset": "sales-events", "error_code": reason, "raw": line, "source_ref": ref, "ingestion_time": at})
            else:
                row.update(payload=line, source="file", source_ref=ref, ingestion_time=at)
                rows.append(row)
    cat = catalog(lake)
    table(cat, "bronze.sales_events", BRONZE).append(pa.Table.from_pylist(rows, BRONZE))
    if rejects:
        table(cat, "bronze.quarantine", QUARANTINE).append(pa.Table.from_pylist(rejects, QUARANTINE))
    print(len(rows), len(rejects))


def silver(lake):
    cat = catalog(lake)
    bronze = cat.load_table("bronze.sales_events").scan().to_arrow()
    target = table(
        cat,
        "silver.sales",
        pa.schema(list(SALES) + [("revenue", pa.decimal128(12, 2)), ("quality_flags", pa.string()), ("source_ref", pa.string())]),
    )
    seen = target.scan(selected_fields=("event_id",)).to_arrow().column("event_id")
    fresh = bronze.filter(pc.invert(pc.is_in(bronze.column("event_id"), value_set=seen)))
    # First ingested copy of each id wins.
    fresh = fresh.sort_by([("ingestion_time", "ascending"), ("source_ref", "ascending")])
    first = fresh.group_by("event_id", use_threads=False).aggregate([([], "count_all")])
    index = pc.index_in(first.column("event_id"), value_set=fresh.column("event_id"))
    fresh = fresh.take(index)
    revenue = pc.multiply(pc.cast(fresh.column("quantity"), pa.decimal128(10, 0)), fresh.column("unit_price"))
    flags = pc.if_else(pc.less_equal(fresh.column("quantity"), 0), "bad_quantity", "")
    out = fresh.select(SALES.names).append_column("revenue", pc.cast(revenue, pa.decimal128(12, 2)))
    out = out.append_column("quality_flags", flags).append_column("source_ref", fresh.column("source_ref"))
    target.append(out)
    print(out.num_rows)


def gold(lake):
    """Both gold sales tables, as ours: one fact per sale line, and the daily aggregate."""
    cat = catalog(lake)
    rows = cat.load_table("silver.sales").scan().to_arrow()
    day = pc.cast(pc.cast(rows.column("event_time"), pa.timestamp("us")), pa.date32())
    rows = rows.append_column("business_date", day)
    facts = rows.select(["event_id", "transaction_id", "business_date", "event_time", "store_id", "product_id", "customer_id", "quantity", "unit_price", "revenue"])
    table(cat, "gold.fact_sales", facts.schema).overwrite(facts)
    daily = rows.group_by(["business_date", "store_id", "product_id"]).aggregate(
        [("revenue", "sum"), ("quantity", "sum"), ("event_id", "count")]
    )
    target = table(cat, "gold.fact_sales_daily", daily.schema)
    target.overwrite(daily)
    print(daily.num_rows)


def main():
    lake, command, *rest = sys.argv[1:]
    {"ingest-clean": ingest_clean, "ingest-dirty": ingest_dirty, "silver": silver, "gold": gold}[command](lake, *rest)


if __name__ == "__main__":
    main()
