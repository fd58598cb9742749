"""Round trips a process makes, for `make bench`: `S3Counter` is a counting pass-through in front
of an S3-compatible server (every request forwarded unchanged, the Host header too, so SigV4
signatures stay valid; counted by kind; on 127.0.0.1 only); `catalog_transactions` reads how
many transactions a PostgreSQL catalog database has served (each catalog query or swap is one).

    with S3Counter("http://127.0.0.1:18014") as counter:
        env["AWS_ENDPOINT_URL"] = counter.url
        ...
        counter.take()  # {"GET": 12, "PUT": 3, "LIST": 1, ...} since the last take
"""

import collections
import http.client
import http.server
import subprocess
import threading
import urllib.parse

# Not forwarded: the pass-through answers `Expect: 100-continue` itself and sends the body whole.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect"}


def kind(method, path):
    """GET of an object, or LIST (a GET on a bucket with list parameters), PUT, HEAD, ..."""
    query = urllib.parse.urlsplit(path).query
    if method == "GET" and ("list-type" in query or "prefix=" in query or "delimiter" in query):
        return "LIST"
    return method


class S3Counter:
    def __init__(self, upstream):
        target = urllib.parse.urlsplit(upstream)
        self.upstream = (target.hostname, target.port or 80)
        self.counts = collections.Counter()
        self.lock = threading.Lock()
        counter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with counter.lock:
                    counter.counts[kind(self.command, self.path)] += 1
                connection = http.client.HTTPConnection(*counter.upstream, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status, response.reason)
                for k, v in response.getheaders():
                    if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                connection.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def take(self):
        """The counts since the last take, and the total."""
        with self.lock:
            counts = dict(self.counts)
            self.counts.clear()
        counts["total"] = sum(counts.values())
        return counts


def catalog_transactions(url):
    """Transactions committed or rolled back in the database of `url` so far. A process's
    counts reach the statistics when its connections close, so read this after it ended; the
    query itself adds one."""
    out = subprocess.run(
        ["psql", url, "-Atc",
         "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"],
        check=True, capture_output=True, text=True,
    )
    return int(out.stdout.strip())


def measure_steps(bin_path, s3_settings, postgres_server, steps):
    """Runs `steps` ((name, argv after the binary), in order) on a fresh lake: an S3 warehouse
    behind an `S3Counter`, a fresh PostgreSQL catalog database. Returns (name, S3 requests by
    kind, catalog transactions) per step."""
    import os
    import uuid

    settings = dict(pair.split("=", 1) for pair in s3_settings.split())
    name = f"bench_roundtrips_{uuid.uuid4().hex}"
    subprocess.run(["psql", postgres_server, "-qc", f"CREATE DATABASE {name}"], check=True)
    catalog = f"{postgres_server.rsplit('/', 1)[0]}/{name}"
    figures = []
    try:
        with S3Counter(settings["AWS_ENDPOINT_URL"]) as counter:
            env = {**os.environ, **settings, "AWS_ENDPOINT_URL": counter.url,
                   "BAKEHOUSE_WAREHOUSE": f"s3://lake/rt{name[-8:]}", "BAKEHOUSE_CATALOG": catalog}
            for step, argv in steps:
                counter.take()
                before = catalog_transactions(catalog)
                done = subprocess.run([bin_path, *argv], env=env, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"{step} failed: {done.stderr.strip()}")
                figures.append((step, counter.take(), catalog_transactions(catalog) - before - 1))
    finally:
        subprocess.run(["psql", postgres_server, "-qc", f"DROP DATABASE {name} WITH (FORCE)"], check=False)
    return figures


def print_figures(figures):
    kinds = ["GET", "LIST", "HEAD", "PUT", "DELETE"]
    print(f"{'step':<34} {'S3 requests':>11} " + " ".join(f"{k:>6}" for k in kinds) + f" {'catalog':>8}")
    for step, s3, catalog in figures:
        print(f"{step:<34} {s3['total']:>11} " + " ".join(f"{s3.get(k, 0):>6}" for k in kinds) + f" {catalog:>8}")
