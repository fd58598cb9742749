"""`make bench`: generates the inputs and measures Bakehouse against the floor (bench-floor: JSON
decoding and Parquet encoding only) and the Python peer (bench/peer/peer.py), each as a whole
process, in one run on this machine. Prints a table with the ratios. Then the scale case (a 10k
batch on lakes holding millions of silver rows, against the empty lake) and the event→gold
latency through `bakehouse local` on the local servers, each with its targets.

Environment: BAKEHOUSE_BIN, BENCH_FLOOR, BENCH_PROBE (binaries), BENCH_PYTHON (a Python with
pyarrow and PyIceberg), BENCH_POSTGRES (the PostgreSQL server of the lakes the Lambda bootstraps
and the latency case run on), BENCH_EVENTS (default 1000000), BENCH_DIR (default
~/.cache/bakehouse-bench), BENCH_CASES (comma-separated, default all: throughput, scale,
latency), BENCH_SCALE (factor on the scale case's lake sizes, default 1: 3 M and 30 M rows of
history, 2 M today), BENCH_REBUILD=1 (build the scale case's cached lakes again),
BENCH_PROBE_RATE and BENCH_PROBE_SECONDS (the latency probes: default 10 per second for 30 s).
"""

import base64
import concurrent.futures
import http.server
import json
import math
import multiprocessing
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = os.environ["BAKEHOUSE_BIN"]
FLOOR = os.environ["BENCH_FLOOR"]
PYTHON = os.environ.get("BENCH_PYTHON", sys.executable)
EVENTS = int(os.environ.get("BENCH_EVENTS", "1000000"))
LAMBDA_DIR = ROOT / "target/lambda"
WORK = pathlib.Path(os.environ.get("BENCH_DIR", pathlib.Path.home() / ".cache/bakehouse-bench"))
CASES = set((os.environ.get("BENCH_CASES") or "throughput,scale,latency,roundtrips").split(","))
SCALE = float(os.environ.get("BENCH_SCALE", "1"))


def sales_lines(n, seed, invalid=0.0):
    """n sales events of the last day (inside the allowed lateness), a fraction schema-invalid."""
    rng = random.Random(seed)
    base = int(time.time()) - 20 * 3600
    broken = [
        lambda r: "{not json",
        lambda r: json.dumps({k: v for k, v in r.items() if k != "store_id"}),
        lambda r: json.dumps({**r, "quantity": "two"}),
        lambda r: json.dumps({**r, "event_time": "2026-03-01 10:00:00"}),
    ]
    for i in range(n):
        at = base + rng.randrange(0, 12 * 3600)
        record = {
            "event_id": f"e{seed:02d}-{i:09d}-{rng.getrandbits(48):012x}",
            "transaction_id": f"t{seed:02d}-{i // 3:09d}",
            "event_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{rng.randrange(1000):03d}Z",
            "store_id": rng.randint(1, 5),
            "product_id": rng.randint(1, 10),
            "customer_id": f"C{rng.randint(1, 2000):04d}" if rng.random() < 0.7 else None,
            "quantity": rng.randint(1, 6),
            "unit_price": rng.choice([2.5, 3.25, 4.0, 4.75, 6.5, 12.0, 18.99]),
            "promotion_id": "P10" if rng.random() < 0.1 else None,
        }
        if invalid and rng.random() < invalid:
            yield rng.choice(broken)(record)
        else:
            yield json.dumps(record, separators=(",", ":"))


def dataset(name, n, invalid=0.0):
    path = WORK / "data" / f"{name}-{n}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            for line in sales_lines(n, seed=len(name), invalid=invalid):
                f.write(line + "\n")
        tmp.rename(path)
    return path


def measured(argv, env=None):
    """Runs a whole process and returns (seconds, peak RSS MB, stdout) via wait4. The page
    cache is flushed first, so no process pays for writing back what the one before wrote."""
    os.sync()
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=errors)
        # Read the output fully, then reap this very child with wait4 for its own peak RSS.
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(map(str, argv[:4]))} failed:\n{out.decode()}\n{errors.read().decode()}")
    return seconds, usage.ru_maxrss / 1024, out.decode()


def files_and_commits(lake):
    """Parquet files and metadata files (one per commit) under a lake's warehouse."""
    files = sum(1 for _ in lake.rglob("*.parquet"))
    commits = sum(1 for _ in lake.rglob("*.metadata.json"))
    return files, commits


def ours_env(lake):
    catalog = lake / "catalog.url"
    env = dict(os.environ)
    env.update(
        BAKEHOUSE_WAREHOUSE=f"file://{lake}/warehouse",
        BAKEHOUSE_CATALOG=catalog.read_text() if catalog.exists() else f"sqlite://{lake}/catalog.db",
        BAKEHOUSE_LOG="error",
    )
    return env


def fresh(name, postgres=False):
    """An empty lake: a local warehouse with an SQLite catalog beside it, or with `postgres`
    (the lakes the bootstraps run on: the Lambda build has no SQLite catalog) a fresh database
    on BENCH_POSTGRES, named in `catalog.url`."""
    lake = WORK / "lakes" / name
    shutil.rmtree(lake, ignore_errors=True)
    lake.mkdir(parents=True)
    if postgres:
        server = os.environ["BENCH_POSTGRES"]
        database = "bench_" + name.replace("-", "_")
        for sql in (f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", f"CREATE DATABASE {database}"):
            subprocess.run(["psql", "-q", "-X", server, "-c", sql], check=True, stdout=subprocess.DEVNULL,
                           env={**os.environ, "PGOPTIONS": "--client-min-messages=warning"})
        (lake / "catalog.url").write_text(f"{server.rsplit('/', 1)[0]}/{database}")
    return lake


ROWS = []


def record(case, who, n, size, seconds, rss, lake_delta):
    files, commits = lake_delta
    ROWS.append(
        dict(case=case, who=who, events=n, seconds=seconds, rate=n / seconds, mbps=size / 1e6 / seconds, rss=rss, files=files, commits=commits)
    )


def median_of(times, run):
    """Runs a short case `times` times (each on a fresh lake) and keeps the median run: a
    sub-second whole process varies by tens of milliseconds from run to run. Prints them all."""
    start = len(ROWS)
    for _ in range(times):
        run()
    runs = sorted(ROWS[start:], key=lambda row: row["seconds"])
    ROWS[start:] = [runs[len(runs) // 2]]
    seconds = ", ".join(f"{r['seconds']:.2f}" for r in runs)
    print(f"{runs[0]['case']}, {runs[0]['who']}, seconds of {times} runs: {seconds}", flush=True)


def median_from_same_lake(times, lake, run):
    """`median_of` for a hop: each run starts from the same lake (restored from a copy taken
    before the first), for both sides alike. Silver→gold takes well under a second for us, and
    a single run varies by as much as the 10k batch does (docs/performance.md)."""
    saved = lake.with_name(lake.name + "-before")
    shutil.rmtree(saved, ignore_errors=True)
    shutil.copytree(lake, saved)

    def again():
        shutil.rmtree(lake)
        shutil.copytree(saved, lake)
        run()

    median_of(times, again)
    shutil.rmtree(saved)


def delta(lake, before):
    after = files_and_commits(lake)
    return after[0] - before[0], after[1] - before[1]


def ours_ingest(case, path, n, lake=None):
    lake = lake or fresh(f"ours-{case}")
    env = ours_env(lake)
    measured([BIN, "init", "--sample"], env)
    before = files_and_commits(lake)
    seconds, rss, _ = measured([BIN, "ingest", "--dataset", "sales-events", str(path)], env)
    record(case, "bakehouse", n, path.stat().st_size, seconds, rss, delta(lake, before))
    return lake


def peer(case, mode, lake, n, size, *args):
    # Its tables exist before it runs, as ours do after `bakehouse init` (not measured either).
    measured([PYTHON, str(HERE / "peer/peer.py"), str(lake), "init"])
    before = files_and_commits(lake)
    seconds, rss, _ = measured([PYTHON, str(HERE / "peer/peer.py"), str(lake), mode, *map(str, args)])
    record(case, "python peer", n, size, seconds, rss, delta(lake, before))


def floor(case, path, n):
    out = fresh(f"floor-{case}") / "out.parquet"
    seconds, rss, _ = measured([FLOOR, str(path), str(out)])
    record(case, "floor (arrow-json → parquet)", n, path.stat().st_size, seconds, rss, (1, 0))


def hop(case, fixture, n, lake):
    env = ours_env(lake)
    before = files_and_commits(lake)
    seconds, rss, _ = measured([BIN, "invoke", fixture.split("/")[0], "--event", str(ROOT / "functions" / fixture)], env)
    record(case, "bakehouse", n, 0, seconds, rss, delta(lake, before))


def hop_bootstrap(case, function, fixture, n, lake, runtime):
    """A hop once more through its function's release bootstrap (stand-in runtime API)."""
    before = files_and_commits(lake)
    os.sync()
    seconds, rss, _ = lambda_invocation(runtime, function, lake, ROOT / "functions" / fixture)
    record(case, "bakehouse (bootstrap)", n, 0, seconds, rss, delta(lake, before))


def ingested(name, path):
    """A fresh lake holding `path` in bronze (for the bootstraps' hops; not a measured case)."""
    lake = fresh(name, postgres=True)
    env = ours_env(lake)
    measured([BIN, "init", "--sample"], env)
    measured([BIN, "ingest", "--dataset", "sales-events", str(path)], env)
    return lake


def kafka_batch(limit_bytes=6_000_000):
    """A KafkaEvent document of sales events just under Lambda's 6 MB invocation limit."""
    path = WORK / "data" / "kafka-6mb.json"
    if not path.exists():
        records, size = [], 200
        for offset, line in enumerate(sales_lines(40_000, seed=6)):
            value = base64.b64encode(line.encode()).decode()
            entry = {"topic": "sales-events", "partition": offset % 3, "offset": offset, "timestamp": 0, "timestampType": "CREATE_TIME", "key": None, "value": value, "headers": []}
            size += len(json.dumps(entry)) + 1
            if size > limit_bytes:
                break
            records.append(entry)
        batches = {}
        for r in records:
            batches.setdefault(f"sales-events-{r['partition']}", []).append(r)
        path.write_text(json.dumps({"eventSource": "SelfManagedKafka", "bootstrapServers": "b:9092", "records": batches}))
    return path


class StandInRuntime:
    """The Lambda runtime API on 127.0.0.1, as a function's bootstrap sees it: each poll for the
    next invocation gets the next queued event; when none is left the poll waits, as Lambda's
    does, so the process is still there to be measured (then 503, once the next start or
    `close` releases it)."""

    def __init__(self):
        self.events, self.polls, self.responses = [], [], []
        self.idle = threading.Event()
        runtime = self

        class Api(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                runtime.polls.append(time.perf_counter())
                if not runtime.events:
                    runtime.idle.wait(60)
                    try:
                        self.send_response(503)
                        self.end_headers()
                    except OSError:  # the process was killed meanwhile
                        pass
                    return
                body = runtime.events.pop(0)
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", f"bench-{len(runtime.polls)}")
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 900_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:bench")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                runtime.responses.append((time.perf_counter(), self.path, body))
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def start(self, function, lake, events=()):
        """Starts `function`'s bootstrap with `events` queued; returns (process, start time)."""
        self.idle.set()
        self.idle = threading.Event()
        self.events, self.polls, self.responses = list(events), [], []
        env = ours_env(lake)
        env.update(
            AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{self.server.server_port}",
            AWS_LAMBDA_FUNCTION_NAME=function,
            AWS_LAMBDA_FUNCTION_VERSION="1",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
        )
        start = time.perf_counter()
        child = subprocess.Popen([str(LAMBDA_DIR / function / "bootstrap")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return child, start

    def wait_for_polls(self, count, limit=120):
        start = time.perf_counter()
        while len(self.polls) < count and time.perf_counter() - start < limit:
            time.sleep(0.001)
        return len(self.polls) >= count

    def close(self):
        self.idle.set()
        self.server.shutdown()


def peak_rss_mb(pid):
    """The peak resident set of a live process (VmHWM), in MB."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def handler_init_ms(runtime, function, lake, runs=5):
    """Milliseconds from starting a bootstrap to its first poll of the runtime API (median)."""
    times = []
    for _ in range(runs):
        child, start = runtime.start(function, lake)
        if runtime.wait_for_polls(1, limit=10):
            times.append((runtime.polls[0] - start) * 1000)
        child.kill()
        child.wait()
    return sorted(times)[len(times) // 2] if times else float("nan")


def lambda_invocation(runtime, function, lake, event):
    """One invocation of a function's bootstrap, as Lambda runs it: (seconds from start to the
    response, peak RSS MB of the process over start-up and the invocation, response body)."""
    child, start = runtime.start(function, lake, [event.read_bytes()])
    done = runtime.wait_for_polls(2)
    rss = peak_rss_mb(child.pid) if done else float("nan")
    child.kill()
    child.wait()
    if not done or not runtime.responses or not runtime.responses[0][1].endswith("/response"):
        raise SystemExit(f"{function} bootstrap did not answer its invocation: {runtime.responses}")
    at, _, body = runtime.responses[0]
    return at - start, rss, body.decode()


def lambda_figures():
    """Stripped bootstrap sizes and handler initialisation, from `make build-lambda`'s output."""
    if not LAMBDA_DIR.exists():
        print("(no target/lambda: run `make build-lambda` for binary sizes and initialisation)")
        return
    lake = fresh("init", postgres=True)
    measured([BIN, "init", "--sample"], ours_env(lake))
    runtime = StandInRuntime()
    print(f"{'function':<18} {'bootstrap MiB':>13} {'(10^6 B)':>9} {'init ms':>8}")
    for function in ("ingest", "bronze-to-silver", "silver-to-gold", "maintenance"):
        size = (LAMBDA_DIR / function / "bootstrap").stat().st_size
        print(f"{function:<18} {size / 2**20:>13.1f} {size / 1e6:>9.1f} {handler_init_ms(runtime, function, lake):>8.1f}")
    runtime.close()


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    accepted = {"throughput", "scale", "latency", "roundtrips"}
    unknown = CASES - accepted
    if unknown:
        raise SystemExit(f"BENCH_CASES: unknown {', '.join(sorted(unknown))} (accepted: {', '.join(sorted(accepted))})")
    if "throughput" in CASES:
        throughput()
    if "scale" in CASES:
        scale()
    if "latency" in CASES:
        latency()
    if "roundtrips" in CASES:
        roundtrips_case()


def roundtrips_case():
    """S3 requests (by kind) and catalog transactions of each hop on a 10k batch, and of runs
    with nothing to do, on an S3 warehouse (the s3s-fs server, through a counting pass-through)
    with a PostgreSQL catalog."""
    import roundtrips

    settings, postgres = os.environ.get("BENCH_S3"), os.environ.get("BENCH_POSTGRES")
    if not settings or not postgres:
        print("(round trips skipped: they need BENCH_S3 and BENCH_POSTGRES, which `make bench` sets)")
        return
    event = lambda function, name: str(ROOT / "functions" / function / "fixtures" / name)
    maintenance = ["invoke", "maintenance", "--event", event("maintenance", "scheduled-event.json")]
    steps = [
        ("init", ["init", "--sample"]),
        ("ingest (10k batch file)", ["ingest", "--dataset", "sales-events", str(dataset("batch", 10_000))]),
        ("bronze-to-silver", ["invoke", "bronze-to-silver", "--event", event("bronze-to-silver", "s3-bronze-commit.json")]),
        ("silver-to-gold", ["invoke", "silver-to-gold", "--event", event("silver-to-gold", "s3-silver-commit.json")]),
        ("maintenance", maintenance),
        ("maintenance, nothing new", maintenance),
        ("process, nothing new", ["process"]),
    ]
    print("\nround trips (S3 requests through a counting pass-through; catalog transactions):", flush=True)
    roundtrips.print_figures(roundtrips.measure_steps(BIN, settings, postgres, steps))


def throughput():
    batch = dataset("batch", 10_000)
    clean = dataset("clean", EVENTS)
    dirty = dataset("dirty", EVENTS, invalid=0.01)
    print(f"inputs: {batch.stat().st_size / 1e6:.1f} MB, {clean.stat().st_size / 1e6:.0f} MB, {dirty.stat().st_size / 1e6:.0f} MB in {WORK / 'data'}", flush=True)

    case = "10k batch"
    median_of(5, lambda: ours_ingest(case, batch, 10_000))
    median_of(5, lambda: peer(case, "ingest-clean", fresh("peer-batch"), 10_000, batch.stat().st_size, batch))
    median_of(5, lambda: floor(case, batch, 10_000))

    case = f"{EVENTS // 1000}k clean"
    lake = ours_ingest(case, clean, EVENTS)
    peer_lake = fresh("peer-clean")
    peer(case, "ingest-clean", peer_lake, EVENTS, clean.stat().st_size, clean)
    floor(case, clean, EVENTS)

    case = f"{EVENTS // 1000}k dirty (1%)"
    ours_ingest(case, dirty, EVENTS)
    peer(case, "ingest-dirty", fresh("peer-dirty"), EVENTS, dirty.stat().st_size, dirty)

    case = "6 MB Kafka batch"
    event = kafka_batch()
    n = sum(len(v) for v in json.loads(event.read_text())["records"].values())
    lake6 = fresh("ours-kafka")
    env = ours_env(lake6)
    measured([BIN, "init", "--sample"], env)
    before = files_and_commits(lake6)
    seconds, rss, out = measured([BIN, "invoke", "ingest", "--event", str(event)], env)
    record(case, "bakehouse", n, event.stat().st_size, seconds, rss, delta(lake6, before))
    if LAMBDA_DIR.exists():
        # The same batch through the ingest function as deployed: its bootstrap polls a stand-in
        # runtime API on 127.0.0.1; peak RSS over start-up and the invocation. The peak varies
        # by several MB from process to process (which thread allocates what), so five fresh
        # runs: the row is the run of median peak, and all five are printed.
        runtime, runs = StandInRuntime(), []
        for _ in range(5):
            lake6 = fresh("ours-kafka-lambda", postgres=True)
            measured([BIN, "init", "--sample"], ours_env(lake6))
            before = files_and_commits(lake6)
            seconds, rss, _ = lambda_invocation(runtime, "ingest", lake6, event)
            runs.append((rss, seconds, delta(lake6, before)))
        runtime.close()
        runs.sort()
        rss, seconds, lake_delta = runs[len(runs) // 2]
        record(case, "bakehouse (ingest bootstrap)", n, event.stat().st_size, seconds, rss, lake_delta)
        print(f"6 MB Kafka batch through the ingest bootstrap, peak MB of five runs: {', '.join(f'{r[0]:.0f}' for r in runs)}", flush=True)

    # The hops as deployed too (their bootstraps, peak RSS over start-up and the hop), on a lake
    # of their own holding the same bronze.
    runtime = StandInRuntime() if LAMBDA_DIR.exists() else None
    boot_lake = ingested("ours-bootstraps", clean) if runtime else None

    case = "bronze→silver"
    fixture = "bronze-to-silver/fixtures/s3-bronze-commit.json"
    hop(case, fixture, EVENTS, lake)
    if runtime:
        hop_bootstrap(case, "bronze-to-silver", fixture, EVENTS, boot_lake, runtime)
    peer(case, "silver", peer_lake, EVENTS, 0)

    case = "silver→gold"
    fixture = "silver-to-gold/fixtures/s3-silver-commit.json"
    median_from_same_lake(3, lake, lambda: hop(case, fixture, EVENTS, lake))
    if runtime:
        hop_bootstrap(case, "silver-to-gold", fixture, EVENTS, boot_lake, runtime)
        runtime.close()
    median_from_same_lake(3, peer_lake, lambda: peer(case, "gold", peer_lake, EVENTS, 0))

    print_table()
    lambda_figures()


def print_table():
    header = f"{'case':<18} {'who':<30} {'wall s':>8} {'events/s':>11} {'MB/s':>7} {'peak MB':>8} {'files':>6} {'commits':>7} {'ours vs':>9}"
    print(header)
    print("-" * len(header))
    for case in dict.fromkeys(r["case"] for r in ROWS):
        rows = [r for r in ROWS if r["case"] == case]
        ours = next(r for r in rows if r["who"] == "bakehouse")
        for r in rows:
            ratio = "" if r["who"].startswith("bakehouse") else f"{r['seconds'] / ours['seconds']:.2f}×"
            mbps = f"{r['mbps']:.0f}" if r["mbps"] else "—"
            print(
                f"{case:<18} {r['who']:<30} {r['seconds']:>8.2f} {r['rate']:>11,.0f} {mbps:>7} {r['rss']:>8.0f} {r['files']:>6} {r['commits']:>7} {ratio:>9}"
            )
    print("ours vs: the other's wall time / ours (above 1: Bakehouse is faster; for the floor, below 1 is expected).")
    out = WORK / "results.json"
    out.write_text(json.dumps(ROWS, indent=1))
    print(f"figures: {out}")


# The scale case: a 10k batch of today's sales (`ingest`, then `process`) on lakes already holding
# millions of silver rows, against the same batch on the empty lake. Each lake is built once
# through the CLI in chunks of at most 1 M rows (ingest, then process) and cached under
# BENCH_DIR/scale; every measured run starts from a copy of it (hard links for the warehouse's
# write-once files, a real copy of the SQLite catalog), so every run sees the same lake.

CHUNK = 1_000_000
DAY = 86_400
PRICES = (2.5, 3.25, 4.0, 4.75, 6.5, 12.0, 18.99)


def sales_between(path, n, tag, start, end):
    """Writes n valid sales events with event times spread evenly over [start, end) (unix
    seconds), ids `<tag>-<i>`: the fields as `sales_lines` makes them, formatted directly."""
    rng = random.Random(tag)
    r = rng.random
    days = {}
    span = end - start
    with open(path, "w") as f:
        for i in range(n):
            at = start + int(span * (i + r()) / n)
            day, second = divmod(at, DAY)
            date = days.get(day) or days.setdefault(day, time.strftime("%Y-%m-%d", time.gmtime(day * DAY)))
            hour, second = divmod(second, 3600)
            minute, second = divmod(second, 60)
            customer = f'"C{int(r() * 2000) + 1:04d}"' if r() < 0.7 else "null"
            promotion = '"P10"' if r() < 0.1 else "null"
            f.write(
                f'{{"event_id":"{tag}-{i:09d}","transaction_id":"{tag}-t{i // 3:09d}",'
                f'"event_time":"{date}T{hour:02d}:{minute:02d}:{second:02d}.{int(r() * 1000):03d}Z",'
                f'"store_id":{int(r() * 5) + 1},"product_id":{int(r() * 10) + 1},"customer_id":{customer},'
                f'"quantity":{int(r() * 6) + 1},"unit_price":{PRICES[int(r() * len(PRICES))]},"promotion_id":{promotion}}}\n'
            )
    return path


def millions(rows):
    return f"{rows / 1e6:g} M"


def link_copy(source, target):
    """A copy of a lake at `target`: the warehouse's files (never written twice) as hard links,
    the files beside it (the SQLite catalog, written in place) as real copies."""
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-al", str(source), str(target)], check=True)
    for item in target.iterdir():
        if item.is_file():
            item.unlink()
            shutil.copy2(source / item.name, item)


def scale_lake(name, rows, start, end, shape):
    """The cached lake `name`: `rows` sales with event times over [start, end), ingested and
    processed in chunks of at most 1 M rows in time order (as history arrives). Built when the
    cache holds no lake of this `shape`; returns the cached copy."""
    cache = WORK / "scale" / name
    marker = cache / "lake.json"
    shape = {**shape, "rows": rows, "chunk": CHUNK}
    if os.environ.get("BENCH_REBUILD") != "1" and marker.exists():
        built = json.loads(marker.read_text())
        if built["shape"] == shape:
            print(f"scale: {name} from the cache ({cache}, built {built['built']} at {built['commit']})", flush=True)
            return cache
    began = time.perf_counter()
    lake = fresh(f"scale-{name}")
    env = ours_env(lake)
    measured([BIN, "init", "--sample"], env)
    chunks = math.ceil(rows / CHUNK)
    bounds = [start + (end - start) * k // chunks for k in range(chunks + 1)]
    sizes = [rows * (k + 1) // chunks - rows * k // chunks for k in range(chunks)]

    def make(k):
        path = WORK / "data" / f"scale-chunk-{k % 2}.jsonl"
        return pool.submit(sales_between, path, sizes[k], f"{name}-{k}", bounds[k], bounds[k + 1])

    # The next chunk is written by a second process while the CLI takes this one.
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        pending = make(0)
        for k in range(chunks):
            path = pending.result()
            if k + 1 < chunks:
                pending = make(k + 1)
            measured([BIN, "ingest", "--dataset", "sales-events", str(path)], env)
            measured([BIN, "process"], env)
            print(f"scale: {name}: {sum(sizes[:k + 1]):,} rows in {time.perf_counter() - began:.0f} s", flush=True)
    for k in range(min(chunks, 2)):
        (WORK / "data" / f"scale-chunk-{k}.jsonl").unlink(missing_ok=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    link_copy(lake, cache)
    marker.write_text(json.dumps({"shape": shape, "built": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit or "?"}))
    print(f"scale: {name} built in {time.perf_counter() - began:.0f} s", flush=True)
    return cache


def scale(runs=5):
    now = int(time.time())
    today = now - now % DAY
    # The batch: on time, all in today's partitions (from six hours ago, or midnight, to a
    # minute ago). The history: the 365 days before today, too late for gold but in silver.
    batch = sales_between(WORK / "data" / "scale-batch.jsonl", 10_000, "batch", max(today, now - 6 * 3600), now - 60)
    history = [round(3_000_000 * SCALE), round(30_000_000 * SCALE)]
    in_today = round(2_000_000 * SCALE)
    lakes = [("empty", None)]
    for rows in history:
        lakes.append((f"{millions(rows)} rows over 365 dates", scale_lake(f"history-{rows}", rows, today - 365 * DAY, today, {"days": 365})))
    lakes.append((f"{millions(in_today)} rows in today's partitions", scale_lake(f"today-{in_today}", in_today, today, now - 120, {"date": time.strftime("%Y-%m-%d", time.gmtime(today))})))
    results = []
    for label, cache in lakes:
        lake = WORK / "lakes" / ("scale-empty" if cache is None else f"scale-{cache.name}")
        measurements = []
        for _ in range(runs):
            if cache is None:
                lake = fresh("scale-empty")
                measured([BIN, "init", "--sample"], ours_env(lake))
            else:
                link_copy(cache, lake)
            env = ours_env(lake)
            ingest = measured([BIN, "ingest", "--dataset", "sales-events", str(batch)], env)
            process = measured([BIN, "process"], env)
            measurements.append((process[0], process[1], ingest[0], ingest[1]))
        print(f"scale: {label}: process seconds of {runs} runs: {', '.join(f'{m[0]:.2f}' for m in sorted(measurements))}"
              f"; ingest: {', '.join(f'{m[2]:.2f}' for m in sorted(measurements, key=lambda m: m[2]))}", flush=True)
        median = lambda i: sorted(m[i] for m in measurements)[len(measurements) // 2]
        results.append(dict(lake=label, process=median(0), ingest=median(2),
                            process_rss=max(m[1] for m in measurements), ingest_rss=max(m[3] for m in measurements)))
    empty = results[0]["process"]
    targets = {1: None, 2: 1.5, 3: 2.0}
    print(f"\nscale: a 10k batch of today's sales, `ingest` then `process` (median of {runs} runs from the same lake; peak: the highest)")
    header = f"{'silver before the batch':<32} {'ingest s':>8} {'process s':>9} {'vs empty':>8} {'peak MB':>8} {'(ingest)':>8}  target"
    print(header)
    print("-" * (len(header) + 30))
    for i, r in enumerate(results):
        r["ratio"] = r["process"] / empty
        limit = targets.get(i)
        checks = [r["process_rss"] <= 128 and r["ingest_rss"] <= 128]
        target = "peak ≤ 128 MB"
        if limit:
            checks.append(r["ratio"] <= limit)
            target = f"process ≤ {limit:g}× empty, {target}"
        r["met"] = all(checks)
        ratio = "" if i == 0 else f"{r['ratio']:.2f}×"
        print(f"{r['lake']:<32} {r['ingest']:>8.2f} {r['process']:>9.2f} {ratio:>8} {r['process_rss']:>8.0f} {r['ingest_rss']:>8.0f}  "
              f"{target}: {'met' if r['met'] else 'NOT MET'}")
    if SCALE != 1:
        print(f"(BENCH_SCALE={SCALE:g}: not the sizes of the targets)")
    (WORK / "results-scale.json").write_text(json.dumps(results, indent=1))


# The event→gold latency: probes sent to Kafka at a steady pace while `bakehouse local` runs on
# the local servers (PostgreSQL catalog, the S3 server, the Kafka broker), and the moment each is
# first visible in gold.fact_sales (the catalog pointer, read every 20 ms by bench/visible.py).


def local_servers():
    """The S3 server's settings and the broker's address, the servers started (as `make up`
    does) when installed; None when they are not installed."""
    home_bin = pathlib.Path.home() / ".cargo/bin"
    if not all(shutil.which(tool) or (home_bin / tool).exists() for tool in ("s3s-fs", "tansu")):
        return None
    s3 = subprocess.run([str(ROOT / "dev/s3.sh"), "start"], check=True, capture_output=True, text=True).stdout.split()
    kafka = subprocess.run([str(ROOT / "dev/kafka.sh"), "start"], check=True, capture_output=True, text=True).stdout
    return dict(pair.split("=", 1) for pair in s3), kafka.strip().split("=", 1)[1]


def percentile(values, p):
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


def latency():
    probe = os.environ.get("BENCH_PROBE")
    servers = local_servers() if probe and "BENCH_POSTGRES" in os.environ else None
    if not servers:
        print("event→gold latency: skipped (needs the local servers: `make up` installs and starts them, "
              "and BENCH_PROBE and BENCH_POSTGRES, which `make bench` sets)")
        return
    s3, kafka = servers
    rate = float(os.environ.get("BENCH_PROBE_RATE", "10"))
    count = round(rate * float(os.environ.get("BENCH_PROBE_SECONDS", "30")))
    run = uuid.uuid4().hex[:10]
    prefix = f"bench{run}."
    lake = fresh("latency", postgres=True)
    catalog = (lake / "catalog.url").read_text()
    env = ours_env(lake)
    env.update(s3, KAFKA_BOOTSTRAP_SERVERS=kafka, BAKEHOUSE_LOG="warn",
               BAKEHOUSE_WAREHOUSE=f"s3://lake/bench-{run}/warehouse", BAKEHOUSE_LANDING=f"s3://lake/bench-{run}/landing")
    subprocess.run([str(ROOT / "dev/kafka.sh"), "topics", prefix], check=True, stdout=subprocess.DEVNULL)
    measured([BIN, "init", "--sample"], env)
    topic = f"{prefix}sales-events"

    def pointer():
        sql = "SELECT metadata_location FROM iceberg_tables WHERE table_namespace = 'gold' AND table_name = 'fact_sales'"
        return subprocess.run(["psql", "-X", "-A", "-t", catalog, "-c", sql], check=True, capture_output=True, text=True).stdout

    log = lake / "visible.log"
    with open(lake / "local.log", "w") as out:
        # `local` as a user starts it: Lambda's batch size and window, the default poll.
        local = subprocess.Popen([BIN, "local", "--topic-prefix", prefix, "--group", f"{prefix}ingest",
                                  "--maintenance-every", "0", "--status-every", "3600"], env=env, stdout=out, stderr=out)
        try:
            # Warm-up: the consumer group has joined and the pipeline has run once.
            before = pointer()
            subprocess.run([probe, kafka, topic, f"warm{run}", "5", "10"], check=True, stdout=subprocess.DEVNULL)
            began = time.perf_counter()
            while pointer() == before:
                if time.perf_counter() - began > 120 or local.poll() is not None:
                    raise SystemExit(f"event→gold latency: the warm-up events did not reach gold (see {lake / 'local.log'})")
                time.sleep(0.2)
            watcher = subprocess.Popen([PYTHON, str(HERE / "visible.py"), "watch", catalog, str(log)])
            time.sleep(1)
            subprocess.run([probe, kafka, topic, f"probe{run}", str(count), str(rate)], check=True, stdout=subprocess.DEVNULL)
            # The last probes' time to arrive, and more: a probe not seen by then counts as never.
            time.sleep(15)
            watcher.terminate()
            watcher.wait()
        finally:
            local.send_signal(signal.SIGTERM)
            try:
                local.wait(60)
            except subprocess.TimeoutExpired:
                local.kill()
                local.wait()
    seen = json.loads(subprocess.run([PYTHON, str(HERE / "visible.py"), "probes", str(log), f"probe{run}"],
                                     env=env, check=True, capture_output=True, text=True).stdout)
    seconds = sorted(at_seen - at_sent for at_sent, at_seen in seen.values()) + [math.inf] * (count - len(seen))
    p50, p95 = percentile(seconds, 50), percentile(seconds, 95)
    print(f"\nevent→gold latency: {count} probes at {rate:g}/s through `bakehouse local` (its defaults: batch window 1 s, poll 1 s) "
          f"on PostgreSQL, s3s-fs and tansu; {len(seen)} visible in gold.fact_sales within 15 s of the last")
    print(f"  p50 {p50:.2f} s, p95 {p95:.2f} s, max {seconds[-1]:.2f} s; target p95 ≤ 5 s: {'met' if p95 <= 5 else 'NOT MET'}")
    # How well the event source's window coalesced the stream into commits (before compaction,
    # which `--maintenance-every 0` keeps from running).
    status = json.loads(subprocess.run([BIN, "status", "--json"], env=env, check=True, capture_output=True, text=True).stdout)
    bronze = next(t for t in status["tables"] if t["table"] == "bronze.sales_events")
    per_2000 = bronze["files"] / max(bronze["rows"], 1) * 2000
    print(f"  bronze.sales_events: {bronze['rows']} rows in {bronze['files']} data files, "
          f"{per_2000:.1f} files per 2,000 rows at {rate:g} events/s")
    (WORK / "results-latency.json").write_text(json.dumps(dict(probes=count, visible=len(seen), p50=p50, p95=p95, seconds=seconds,
                                                                 bronze_files_per_2000_rows=per_2000)))


if __name__ == "__main__":
    main()
