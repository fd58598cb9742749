"""The Python peer of `make bench`: the pipeline as a careful AWS user would write it with pyarrow,
msgspec and PyIceberg (SQLite catalog, local warehouse), one hop per process, like a Lambda
invocation. The tables are ours: the same schemas, bronze partitioned by ingestion day, Snappy.

  peer.py LAKE init                namespaces and the bronze tables (as `bakehouse init`; not timed)
  peer.py LAKE ingest-clean FILE   vectorized: pyarrow's multithreaded JSON reader, then every
                                   schema check of SPEC §3 on whole columns; if one fails, the
                                   file goes the per-record way (one bad line fails the reader)
  peer.py LAKE ingest-dirty FILE   per record: msgspec decodes and checks each line against a
                                   typed struct; a line it refuses is checked field by field in
                                   our order, for our error code; rejects are quarantined
  peer.py LAKE silver              bronze -> silver: first copy of each event_id across all of
                                   silver, revenue, quality flags
  peer.py LAKE gold                silver -> gold: a fact per sale line, and revenue and quantity
                                   per day, store and product

Both ingest modes keep what ours keeps: typed fields, the raw payload (trimmed), lineage (source,
source_ref = FILE:line, ingestion_time), and for each reject its code, message and raw text.
Imports are taken where they are used: start-up is most of a small batch's time.
"""

import sys

MAX_RECORD_BYTES = 1024 * 1024
MAX_LINE_REVENUE_CENTS = 10**12 - 1
I32 = (-(2**31), 2**31 - 1)
DATASET = "sales-events"


def schemas():
    """The Arrow schemas of the sales columns, bronze and quarantine (as our tables)."""
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    sales = [
        ("event_id", pa.string()),
        ("transaction_id", pa.string()),
        ("event_time", ts),
        ("store_id", pa.int32()),
        ("product_id", pa.int32()),
        ("customer_id", pa.string()),
        ("quantity", pa.int32()),
        ("unit_price", pa.decimal128(10, 2)),
        ("promotion_id", pa.string()),
    ]
    lineage = [("payload", pa.string()), ("source", pa.string()), ("source_ref", pa.string()), ("ingestion_time", ts)]
    quarantine = [
        ("dataset", pa.string()),
        ("source", pa.string()),
        ("source_ref", pa.string()),
        ("error_code", pa.string()),
        ("error_message", pa.string()),
        ("raw", pa.string()),
        ("raw_encoding", pa.string()),
        ("ingestion_time", ts),
    ]
    return pa.schema(sales), pa.schema(sales + lineage), pa.schema(quarantine)


def catalog(lake):
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog("peer", uri=f"sqlite:///{lake}/catalog.db", warehouse=f"file://{lake}/warehouse")


def table(cat, name, schema):
    """Loads `name`, creating it (unpartitioned) when missing: the silver and gold tables."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return cat.load_table(name)
    except NoSuchTableError:
        return cat.create_table(name, schema=schema)


def init(lake):
    """The namespaces and the two bronze tables the ingest writes, as ours: partitioned by the
    day of ingestion_time, Snappy-compressed Parquet."""
    from pyiceberg.transforms import DayTransform

    _, bronze, quarantine = schemas()
    cat = catalog(lake)
    for ns in ("bronze", "silver", "gold"):
        cat.create_namespace_if_not_exists(ns)
    for name, schema in (("bronze.sales_events", bronze), ("bronze.quarantine", quarantine)):
        created = cat.create_table_if_not_exists(name, schema=schema, properties={"write.parquet.compression-codec": "snappy"})
        if created.spec().is_unpartitioned():
            with created.update_spec() as spec:
                spec.add_field("ingestion_time", DayTransform(), "ingestion_time_day")


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def now_us():
    import time

    return time.time_ns() // 1000


def ingest_clean(lake, path):
    """The whole file through pyarrow's JSON reader, every check on whole columns; on any
    failure the per-record path decides, record by record."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.json as pj

    data = read_file(path)
    at = now_us()
    # event_time as text (the reader would take a time without an offset as UTC).
    read = read_schema(event_time=pa.string())
    buffer = pa.py_buffer(data)
    try:
        events = pj.read_json(
            pa.BufferReader(buffer),
            read_options=pj.ReadOptions(block_size=1 << 22),
            parse_options=pj.ParseOptions(explicit_schema=read, unexpected_field_behavior="ignore"),
        )
        # The lines themselves (the payload): one column that no valid JSON line can split.
        lines = pcsv.read_csv(
            pa.BufferReader(buffer),
            read_options=pcsv.ReadOptions(column_names=["payload"], block_size=1 << 22),
            parse_options=pcsv.ParseOptions(delimiter="\x01", quote_char=False, escape_char=False),
            convert_options=pcsv.ConvertOptions(column_types={"payload": pa.string()}),
        ).column(0)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return ingest_dirty(lake, path, data)
    n = events.num_rows
    # Every line is one object (no blank lines, none split by the readers): line numbers are
    # row numbers, and a payload needs no trimming.
    if not (
        lines.length() == n == data.count(b"\n") + (not data.endswith(b"\n"))
        and pc.all(pc.starts_with(lines, "{")).as_py()
        and pc.all(pc.ends_with(lines, "}")).as_py()
        and pc.max(pc.binary_length(lines)).as_py() <= MAX_RECORD_BYTES
    ):
        return ingest_dirty(lake, path, data)
    checked = checked_columns(events)
    if checked is None:
        return ingest_dirty(lake, path, data)
    event_time, unit_price, revenue_ok = checked
    if not pc.all(revenue_ok).as_py():
        return ingest_dirty(lake, path, data)
    numbers = pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n))
    append(lake, path, at, events, event_time, unit_price, lines, numbers, [])


def read_schema(**types):
    """The sales columns as the JSON reader takes them: unit_price as a number (checked for two
    decimals, then cast, as ours reads it), and `types` in place of the others'."""
    import pyarrow as pa

    sales, _, _ = schemas()
    types = {"unit_price": pa.float64(), **types}
    return pa.schema([(f.name, types.get(f.name, f.type)) for f in sales])


def checked_columns(events):
    """SPEC §3's checks the reader's types do not make, on whole columns: required fields
    present, string lengths, RFC 3339 times with an offset, money with two decimals and in
    range. Returns (event_time, unit_price, revenue within range) or None when one fails."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = events.column
    if any(col(name).null_count for name in ("event_id", "event_time", "store_id", "product_id", "quantity", "unit_price")):
        return None
    length_ok = [
        pc.and_(pc.greater_equal(pc.utf8_length(col("event_id")), 1), pc.less_equal(pc.utf8_length(col("event_id")), 64)),
        pc.fill_null(pc.and_(pc.greater_equal(pc.utf8_length(col("transaction_id")), 1), pc.less_equal(pc.utf8_length(col("transaction_id")), 64)), True),
        pc.fill_null(pc.less_equal(pc.utf8_length(col("customer_id")), 64), True),
        pc.match_substring_regex(col("event_time"), r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$"),
    ]
    if not all(pc.all(ok).as_py() for ok in length_ok):
        return None
    try:
        event_time = pc.cast(col("event_time"), pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid:
        return None
    cents, money_ok = money(col("unit_price"))
    if not pc.all(money_ok).as_py():
        return None
    unit_price = pc.cast(col("unit_price"), pa.decimal128(10, 2))
    return event_time, unit_price, revenue_within(cents, col("quantity"))


def money(price):
    """Ours (Money::from_f64): cents = round(price × 100), rejected when further than float
    noise from a whole cent (invalid_value); decimal(10,2) holds |cents| < 10^10. Returns
    (cents as float64, ok)."""
    import pyarrow.compute as pc

    scaled = pc.multiply(price, 100.0)
    cents = pc.round(scaled, round_mode="half_towards_infinity")
    noise = pc.multiply(pc.max_element_wise(pc.abs(cents), 1.0), 1e-6)
    whole = pc.less_equal(pc.abs(pc.subtract(scaled, cents)), noise)
    return cents, pc.and_(whole, pc.less(pc.abs(cents), 1e10))


def revenue_within(cents, quantity):
    import pyarrow as pa
    import pyarrow.compute as pc

    revenue = pc.multiply(cents, pc.cast(quantity, pa.float64()))
    return pc.less_equal(pc.abs(revenue), float(MAX_LINE_REVENUE_CENTS))


def sale_decoder():
    """msgspec's decoder of a valid sale: it refuses what SPEC §3 refuses, except money (two
    decimals, range), checked on the columns after."""
    import datetime as dt
    from typing import Annotated, Optional

    import msgspec

    Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    Int = Annotated[int, msgspec.Meta(ge=I32[0], le=I32[1])]

    class Sale(msgspec.Struct, gc=False):
        event_id: Id
        event_time: Annotated[dt.datetime, msgspec.Meta(tz=True)]
        store_id: Int
        product_id: Int
        quantity: Int
        unit_price: float
        transaction_id: Optional[Id] = None
        customer_id: Optional[Annotated[str, msgspec.Meta(max_length=64)]] = None
        promotion_id: Optional[str] = None

    return msgspec.json.Decoder(Sale).decode, msgspec.DecodeError


def ingest_dirty(lake, path, data=None):
    """Line by line: msgspec checks each record; one it refuses is checked field by field for
    its reason. The accepted lines go through pyarrow's JSON reader for their typed columns."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    data = read_file(path) if data is None else data
    at = now_us()
    decode, refused = sale_decoder()
    kept, numbers, rejects, retyped = [], [], [], {}
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    for number, line in enumerate(data[start:].split(b"\n"), 1):
        try:
            if len(line) > MAX_RECORD_BYTES:
                raise refused
            decode(line)
        except refused:
            if not line.strip():
                continue  # a blank line is no record
            reason = rejection(line)
            if reason:
                rejects.append((number, line, *reason))
                continue
            # Valid after all (a whole number written 3.0): typed from a normalised copy.
            retyped[len(kept)] = normalised(line)
        kept.append(line)
        numbers.append(number)
    events = pj.read_json(
        pa.BufferReader(b"\n".join([retyped.get(i, line) for i, line in enumerate(kept)] if retyped else kept)),
        read_options=pj.ReadOptions(block_size=1 << 22),
        parse_options=pj.ParseOptions(explicit_schema=read_schema(), unexpected_field_behavior="ignore"),
    )
    lines = pa.array(kept, pa.string())
    if not (pc.all(pc.starts_with(lines, "{")).as_py() and pc.all(pc.ends_with(lines, "}")).as_py()):
        lines = pc.utf8_trim_whitespace(lines)
    numbers = pa.array(numbers, pa.int64())
    cents, money_ok = money(events.column("unit_price"))
    ok = pc.and_(money_ok, revenue_within(cents, events.column("quantity")))
    if not pc.all(ok).as_py():
        bad = pc.invert(ok)
        for index, number in zip(pc.indices_nonzero(bad).to_pylist(), pc.filter(numbers, bad).to_pylist()):
            rejects.append((number, kept[index], *rejection(kept[index])))
        events, lines, numbers = events.filter(ok), lines.filter(ok), numbers.filter(ok)
    unit_price = pc.cast(events.column("unit_price"), pa.decimal128(10, 2))
    rejects.sort()
    append(lake, path, at, events, events.column("event_time"), unit_price, lines, numbers, rejects)


def append(lake, path, at, events, event_time, unit_price, lines, numbers, rejects):
    """The bronze rows (and the quarantine rows, if any) appended, one commit per table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    _, bronze, quarantine = schemas()
    ts = pa.timestamp("us", tz="UTC")
    n = events.num_rows
    columns = {name: events.column(name) for name in events.column_names}
    columns.update(
        event_time=event_time,
        unit_price=unit_price,
        payload=lines,
        source=pa.repeat(pa.scalar("file"), n),
        source_ref=pc.binary_join_element_wise(pa.scalar(path), pc.cast(numbers, pa.string()), ":"),
        ingestion_time=pa.repeat(pa.scalar(at, ts), n),
    )
    rows = pa.Table.from_arrays([columns[name] for name in bronze.names], schema=bronze)
    cat = catalog(lake)
    cat.load_table("bronze.sales_events").append(rows)
    if rejects:
        raw = [line.decode("utf-8", "strict") if utf8(line) else base64(line) for _, line, _, _ in rejects]
        bad = pa.table(
            {
                "dataset": pa.repeat(pa.scalar(DATASET), len(rejects)),
                "source": pa.repeat(pa.scalar("file"), len(rejects)),
                "source_ref": [f"{path}:{number}" for number, _, _, _ in rejects],
                "error_code": [code for _, _, code, _ in rejects],
                "error_message": [message for _, _, _, message in rejects],
                "raw": raw,
                "raw_encoding": ["text" if utf8(line) else "base64" for _, line, _, _ in rejects],
                "ingestion_time": pa.repeat(pa.scalar(at, ts), len(rejects)),
            },
            schema=quarantine,
        )
        cat.load_table("bronze.quarantine").append(bad)
    print(n, len(rejects))


def utf8(line):
    try:
        line.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def base64(line):
    import base64 as b64

    return b64.b64encode(line).decode()


def rejection(line):
    """Why ours rejects `line` — its checks in its order — as (code, message), or None when it
    is valid (msgspec refuses a few values ours takes, such as 3.0 for an integer)."""
    import datetime as dt

    import msgspec

    if len(line) > MAX_RECORD_BYTES:
        return "too_large", f"record is {len(line)} bytes; the limit is {MAX_RECORD_BYTES}"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return "not_utf8", f"not UTF-8: {e}"
    try:
        record = msgspec.json.decode(text)
    except msgspec.DecodeError as e:
        return "not_json", f"not JSON: {e}"
    if not isinstance(record, dict):
        return "not_object", f"expected a JSON object, found {type(record).__name__}"

    def string(name, required, length):
        value = record.get(name)
        if value is None:
            return ("missing_field", f"required field {name} is missing or null") if required else None
        if not isinstance(value, str):
            return "wrong_type", f"field {name} must be a string"
        if length and not length[0] <= len(value) <= length[1]:
            return "bad_length", f"field {name} must have {length[0]}-{length[1]} characters"
        return None

    def integer(name):
        value = record.get(name)
        if value is None:
            return "missing_field", f"required field {name} is missing or null"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
            return "wrong_type", f"field {name} must be an integer"
        if not I32[0] <= value <= I32[1]:
            return "out_of_range", f"field {name} = {value} does not fit a 32-bit integer"
        return None

    def timestamp(name):
        value = record.get(name)
        if value is None:
            return "missing_field", f"required field {name} is missing or null"
        if not isinstance(value, str):
            return "wrong_type", f"field {name} must be an RFC 3339 string"
        try:
            if msgspec.convert(value, dt.datetime).tzinfo is None:
                raise ValueError
        except (msgspec.ValidationError, ValueError):
            return "bad_timestamp", f"field {name} = {value!r} is not an RFC 3339 timestamp with offset"
        return None

    def unit_price():
        value = record.get("unit_price")
        if value is None:
            return "missing_field", "required field unit_price is missing or null"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "wrong_type", "field unit_price must be a number"
        return money_reason(value)

    checks = (
        lambda: string("event_id", True, (1, 64)),
        lambda: string("transaction_id", False, (1, 64)),
        lambda: timestamp("event_time"),
        lambda: integer("store_id"),
        lambda: integer("product_id"),
        lambda: string("customer_id", False, (0, 64)),
        lambda: integer("quantity"),
        unit_price,
        lambda: string("promotion_id", False, None),
    )
    for check in checks:
        reason = check()
        if reason:
            return reason
    cents = round(float(record["unit_price"]) * 100)
    if abs(cents * record["quantity"]) > MAX_LINE_REVENUE_CENTS:
        return "out_of_range", "quantity × unit_price exceeds 9999999999.99"
    return None


def money_reason(value):
    """Ours on a unit price: None when it is money, else (code, message)."""
    value = float(value)
    if value != value or abs(value) == float("inf") or abs(value) >= 1e16:
        return "invalid_value", "field unit_price must be a number with at most two decimals"
    scaled = value * 100.0
    cents = float(int(abs(scaled) + 0.5)) * (1 if scaled >= 0 else -1)
    if abs(scaled - cents) > 1e-6 * max(abs(cents), 1.0):
        return "invalid_value", "field unit_price must be a number with at most two decimals"
    if abs(cents) >= 1e10:
        return "out_of_range", "field unit_price does not fit decimal(10,2)"
    return None


def normalised(line):
    """A valid line whose integers are written as floats, with them written as integers."""
    import msgspec

    record = msgspec.json.decode(line)
    for name in ("store_id", "product_id", "quantity"):
        record[name] = int(record[name])
    return msgspec.json.encode(record)


def silver(lake):
    import pyarrow as pa
    import pyarrow.compute as pc

    sales, _, _ = schemas()
    cat = catalog(lake)
    bronze = cat.load_table("bronze.sales_events").scan().to_arrow()
    target = table(
        cat,
        "silver.sales",
        pa.schema(list(sales) + [("revenue", pa.decimal128(12, 2)), ("quality_flags", pa.string()), ("source_ref", pa.string())]),
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
    out = fresh.select(sales.names).append_column("revenue", pc.cast(revenue, pa.decimal128(12, 2)))
    out = out.append_column("quality_flags", flags).append_column("source_ref", fresh.column("source_ref"))
    target.append(out)
    print(out.num_rows)


def gold(lake):
    """Both gold sales tables, as ours: one fact per sale line, and the daily aggregate."""
    import pyarrow as pa
    import pyarrow.compute as pc

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
    {"init": init, "ingest-clean": ingest_clean, "ingest-dirty": ingest_dirty, "silver": silver, "gold": gold}[command](lake, *rest)


if __name__ == "__main__":
    main()
