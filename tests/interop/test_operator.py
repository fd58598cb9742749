"""Operator experience after `bakehouse demo`: `status --json` and `report` (rendered by headless
Chromium) show the figures computed here, independently of the Rust code, from the silver and
quarantine tables read with PyIceberg and SPEC.md's rules; `replay` moves a record that passes
now — put into quarantine here, through PyIceberg — into bronze exactly once."""

import datetime as dt
import json
import os
import shutil
import subprocess
from collections import defaultdict
from decimal import Decimal
from html.parser import HTMLParser

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

BIN = os.environ.get("BAKEHOUSE_BIN", "bakehouse")
EPOCH = dt.date(1970, 1, 1)
MIN_SCORE = 50
SILVER = {"sales-events": "silver.sales", "equipment-metrics": "silver.equipment_metrics",
          "inventory-updates": "silver.inventory"}
CHARTS = ["daily-revenue", "top-products", "quality-score", "late-arrivals", "equipment-efficiency"]
BUCKETS = [(1, "≤ 1 h"), (6, "1–6 h"), (24, "6–24 h"), (float("inf"), "> 24 h, allowed")]   # then "too late"


def cli(env, *args):
    result = subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def chromium():
    for name in ["chromium", "chromium-browser", "google-chrome"]:
        if shutil.which(name):
            return name
    assert not os.environ.get("CI"), "CI must render the report: `make test` installs Debian's chromium"
    pytest.skip("no Chromium: `make test` installs Debian's chromium package")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "BAKEHOUSE_WAREHOUSE": f"file://{home}/warehouse",
           "BAKEHOUSE_CATALOG": f"sqlite://{home}/catalog.db"}
    cli(env, "demo", "--home", str(home))
    catalog = SqlCatalog("bakehouse", uri=f"sqlite:///{home}/catalog.db", warehouse=f"file://{home}/warehouse")
    status = json.loads(cli(env, "status", "--json", "--days", "60"))
    return {"home": home, "env": env, "catalog": catalog, "status": status}


def scan(catalog, name):
    return catalog.load_table(name).scan().to_arrow().to_pylist()


def days(value):
    return (value - EPOCH).days


def eligible(row):
    return not row["too_late"] and row["quality_score"] >= MIN_SCORE


def round1(x):
    return round(x + 1e-12, 1)


def test_status_tables_are_what_pyiceberg_reads(demo):
    catalog, status = demo["catalog"], demo["status"]
    assert len(status["tables"]) == 25
    for entry in status["tables"]:
        table = catalog.load_table(entry["table"])
        files = table.inspect.files()
        assert entry["rows"] == len(table.scan().to_arrow()), entry
        assert entry["files"] == files.num_rows, entry
        assert entry["bytes"] == sum(files.column("file_size_in_bytes").to_pylist()), entry
        assert entry["avg_file_bytes"] == entry["bytes"] // max(entry["files"], 1)
        assert entry["snapshots"] == len(table.metadata.snapshots), entry
        assert entry["last_commit"] is not None


def test_status_hops_are_caught_up_after_the_demo(demo):
    catalog = demo["catalog"]
    assert len(demo["status"]["hops"]) == 9   # 4 silver tables and 5 gold tables read incrementally
    for hop in demo["status"]["hops"]:
        source = catalog.load_table(hop["source"])
        assert hop["source_head"] == source.metadata.current_snapshot().sequence_number, hop
        # Caught up: only compactions (replace snapshots, nothing new) after the checkpoint.
        after = [s for s in source.metadata.snapshots if s.sequence_number > hop["checkpoint"]]
        assert all(s.summary.operation.value == "replace" for s in after), hop
        assert hop["checkpoint"] > 0 and (hop["snapshots_behind"], hop["rows_behind"]) == (0, 0), hop


def test_status_quality_figures_match_silver_and_quarantine(demo):
    catalog = demo["catalog"]
    expected = defaultdict(lambda: {"records": 0, "gold_eligible": 0, "quarantined": 0, "scores": [],
                                    "perfect": 0, "poor": 0})
    for dataset, table in SILVER.items():
        for row in scan(catalog, table):
            e = expected[(days(row["business_date"]), dataset)]
            e["records"] += 1
            e["gold_eligible"] += eligible(row)
            e["scores"].append(row["quality_score"])
            e["perfect"] += row["quality_score"] == 100
            e["poor"] += row["quality_score"] < MIN_SCORE
    for row in scan(catalog, "bronze.quarantine"):
        if row["dataset"] in SILVER:
            expected[(days(row["ingestion_time"].date()), row["dataset"])]["quarantined"] += 1
    # `--json` gives dates as YYYY-MM-DD.
    shown = {(days(dt.date.fromisoformat(q["business_date"])), q["dataset"]): q for q in demo["status"]["quality"]}
    assert set(shown) == set(expected)
    assert sum(q["records"] for q in shown.values()) > 5000
    for key, e in expected.items():
        q = shown[key]
        assert (q["records"], q["gold_eligible"], q["quarantined"], q["perfect"], q["poor"]) == \
            (e["records"], e["gold_eligible"], e["quarantined"], e["perfect"], e["poor"]), key
        if e["scores"]:
            assert q["avg_quality_score"] == pytest.approx(sum(e["scores"]) / len(e["scores"])), key


def test_status_late_arrival_figures_match_silver(demo):
    catalog = demo["catalog"]
    late = defaultdict(list)
    too_late = defaultdict(int)
    for dataset, table in SILVER.items():
        for row in scan(catalog, table):
            key = (days(row["business_date"]), dataset)
            late[key]
            too_late[key] += row["too_late"]
            if row["lateness_seconds"] > 3600:
                late[key].append(row["lateness_seconds"] / 3600)
    shown = {(days(dt.date.fromisoformat(r["business_date"])), r["dataset"]): r
             for r in demo["status"]["late_arrivals"]}
    assert set(shown) == set(late)
    assert sum(too_late.values()) > 0
    for key, hours in late.items():
        r = shown[key]
        assert (r["late_records"], r["too_late_records"]) == (len(hours), too_late[key]), key
        if hours:
            assert r["avg_lateness_hours"] == pytest.approx(sum(hours) / len(hours))
            assert r["max_lateness_hours"] == pytest.approx(max(hours))


class Marks(HTMLParser):
    """The chart marks of a rendered page: {figure id: [attributes of each mark]}."""

    def __init__(self):
        super().__init__()
        self.figure = None
        self.svgs = set()
        self.marks = defaultdict(list)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "figure":
            self.figure = attrs.get("id")
        elif tag == "svg" and self.figure:
            self.svgs.add(self.figure)
        elif "mark" in (attrs.get("class") or "").split():
            self.marks[self.figure].append(attrs)


def test_the_report_renders_every_chart_with_the_independent_figures(demo, tmp_path):
    browser = chromium()
    out = tmp_path / "report.html"
    cli(demo["env"], "report", "--out", str(out))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"]
    dom = subprocess.run([browser, *flags, "--dump-dom", out.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    page = Marks()
    page.feed(dom)
    assert page.svgs == set(CHARTS)
    for chart in CHARTS:
        assert page.marks[chart], chart

    catalog = demo["catalog"]
    sales = [r for r in scan(catalog, "silver.sales") if eligible(r)]
    # The latest 14 business dates with silver rows (also those whose rows were all too late).
    window = sorted({days(r["business_date"]) for table in SILVER.values() for r in scan(catalog, table)})[-14:]
    label = lambda d: (EPOCH + dt.timedelta(days=d)).isoformat()

    revenue = defaultdict(Decimal)
    by_product = defaultdict(Decimal)
    for r in sales:
        if days(r["business_date"]) in window:
            revenue[(f"store {r['store_id']}", label(days(r["business_date"])))] += r["revenue"]
            by_product[r["product_id"]] += r["revenue"]
    drawn = {(m["data-series"], m["data-label"]): Decimal(m["data-value"]) for m in page.marks["daily-revenue"]}
    assert {k: v for k, v in drawn.items() if v} == {k: v for k, v in revenue.items() if v}
    assert sum(drawn.values()) > 1000

    top = sorted(by_product.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    bars = [(m["data-label"].split()[0], Decimal(m["data-value"])) for m in page.marks["top-products"]]
    assert bars == [(f"#{p}", v) for p, v in top]

    scores = defaultdict(list)
    for dataset, table in SILVER.items():
        for r in scan(catalog, table):
            if days(r["business_date"]) in window:
                scores[(dataset, label(days(r["business_date"])))].append(r["quality_score"])
    drawn = {(m["data-series"], m["data-label"]): float(m["data-value"]) for m in page.marks["quality-score"]}
    assert drawn == {k: round1(sum(v) / len(v)) for k, v in scores.items()}

    histogram = defaultdict(int)
    for table in SILVER.values():
        for r in scan(catalog, table):
            if days(r["business_date"]) in window:
                hours = r["lateness_seconds"] / 3600
                name = "too late" if r["too_late"] else next(name for upper, name in BUCKETS if hours <= upper)
                histogram[name] += 1
    drawn = {m["data-label"]: float(m["data-value"]) for m in page.marks["late-arrivals"]}
    assert drawn == {name: float(histogram[name]) for name in [n for _, n in BUCKETS] + ["too late"]}
    # The same too-late count as `status` shows (the demo's dates fit both windows).
    assert drawn["too late"] == sum(r["too_late_records"] for r in demo["status"]["late_arrivals"]) > 0

    up, down = defaultdict(float), defaultdict(float)
    for r in scan(catalog, "silver.equipment_metrics"):
        if eligible(r) and days(r["business_date"]) in window:
            if r["operational_status"] == "running":
                up[r["equipment_id"]] += r["interval_seconds"] / 3600
            elif r["operational_status"] in ("maintenance", "error"):
                down[r["equipment_id"]] += r["interval_seconds"] / 3600
    expected = {f"equipment {e}": round1(100 * up[e] / (up[e] + down[e]))
                for e in set(up) | set(down) if up[e] + down[e] > 0}
    drawn = {m["data-label"]: float(m["data-value"]) for m in page.marks["equipment-efficiency"]}
    assert drawn == pytest.approx(expected, abs=0.051)

    # Painted, not just parsed: the screenshot has the bars' colour over a real area.
    from PIL import Image
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1000,4000", out.as_uri()],
                   capture_output=True, timeout=120, check=True)
    pixels = Image.open(shot).convert("RGB").get_flattened_data()
    assert sum(1 for p in pixels if p == (0xC0, 0x39, 0x2B)) > 20_000


def test_replay_moves_a_record_fixed_in_quarantine_into_bronze_exactly_once(demo):
    catalog, env = demo["catalog"], demo["env"]
    quarantine = catalog.load_table("bronze.quarantine")
    now = dt.datetime.now(dt.timezone.utc)
    sale = {"event_id": "replayed-1", "event_time": (now - dt.timedelta(hours=2)).isoformat(),
            "store_id": 1, "product_id": 1, "quantity": 3, "unit_price": 2.5}
    # A valid sale an earlier validator rejected, appended by another engine.
    row = {"dataset": "sales-events", "source": "kafka", "source_ref": "sales-events/0/999999",
           "error_code": "bad_length", "error_message": "older validator", "raw": json.dumps(sale),
           "raw_encoding": "text", "ingestion_time": now - dt.timedelta(hours=1)}
    quarantine.append(pa.Table.from_pylist([row], schema=quarantine.schema().as_arrow()))
    before = len(scan(catalog, "bronze.quarantine"))

    first = json.loads(cli(env, "replay", "--reason", "bad_length"))
    assert first["moved"] == {"bronze.sales_events": 1}
    assert first["removed_from_quarantine"] == 1
    # Silver has not processed it yet: status shows the hop one snapshot and one row behind.
    hops = {h["target"]: h for h in json.loads(cli(env, "status", "--json"))["hops"]}
    assert (hops["silver.sales"]["snapshots_behind"], hops["silver.sales"]["rows_behind"]) == (1, 1)
    second = json.loads(cli(env, "replay", "--reason", "bad_length", "--process").split("\nCaught up")[0])
    assert second["moved"] == {} and second["removed_from_quarantine"] == 0

    bronze = [r for r in scan(catalog, "bronze.sales_events") if r["source_ref"] == "sales-events/0/999999"]
    assert len(bronze) == 1 and bronze[0]["event_id"] == "replayed-1"
    assert len(scan(catalog, "bronze.quarantine")) == before - 1
    assert [r["event_id"] for r in scan(catalog, "silver.sales")].count("replayed-1") == 1
    facts = [r for r in scan(catalog, "gold.fact_sales") if r["sale_id"] == "replayed-1"]
    assert len(facts) == 1 and facts[0]["revenue"] == Decimal("7.50")
