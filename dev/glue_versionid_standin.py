"""A STAND-IN for AWS Glue's optimistic locking, for tests only: moto's server (S3 and Glue on
one endpoint) with one thing added — `UpdateTable` carrying a `VersionId` that is no longer the
table's current version is refused with `ConcurrentModificationException`, as AWS documents
Glue's `VersionId` ("the version ID at which to update the table contents"). moto itself accepts
a stale `VersionId` (checked with moto 5.2.6), so a concurrency test on plain moto cannot show
that lost updates are prevented.

To widen the window in which a concurrent writer can slip in, every `GetTable` answer is held
back `--get-delay-ms` after it is read. `GET /_standin/rejections` returns how many updates were
refused since the last `/moto-api/reset`. Usage: python glue_versionid_standin.py PORT [--get-delay-ms 30]
"""

import argparse
import io
import json
import re
import threading
import time

from moto.core import DEFAULT_ACCOUNT_ID
from moto.glue.models import glue_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

UPDATE_LOCK = threading.Lock()
REJECTIONS = 0


def region_of(environ):
    match = re.search(r"Credential=[^/]+/\d+/([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else "us-east-1"


def stale_version(environ, request):
    version = request.get("VersionId")
    if version is None:
        return None
    backend = glue_backends[DEFAULT_ACCOUNT_ID][region_of(environ)]
    name = request.get("TableInput", {}).get("Name")
    try:
        table = backend.get_table(request.get("DatabaseName"), name)
    except Exception:  # a missing table: moto answers that itself
        return None
    current = str(table._current_version)
    return None if version == current else current


def with_standin(moto_app, get_delay):
    def app(environ, start_response):
        global REJECTIONS
        if environ.get("PATH_INFO") == "/_standin/rejections":
            body = json.dumps({"rejections": REJECTIONS}).encode()
            start_response(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if environ.get("PATH_INFO") == "/moto-api/reset":
            REJECTIONS = 0
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target == "AWSGlue.GetTable":
            response = list(moto_app(environ, start_response))
            time.sleep(get_delay)
            return response
        if target != "AWSGlue.UpdateTable":
            return moto_app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        request = json.loads(body or b"{}")
        # The check and the update are one step, as in Glue.
        with UPDATE_LOCK:
            current = stale_version(environ, request)
            if current is not None:
                REJECTIONS += 1
                error = json.dumps(
                    {
                        "__type": "ConcurrentModificationException",
                        "Message": f"VersionId {request['VersionId']} is not the table's "
                        f"current version {current} (stand-in check)",
                    }
                ).encode()
                start_response(
                    "400 Bad Request",
                    [
                        ("Content-Type", "application/x-amz-json-1.1"),
                        ("Content-Length", str(len(error))),
                        ("x-amzn-ErrorType", "ConcurrentModificationException"),
                    ],
                )
                return [error]
            return list(moto_app(environ, start_response))

    return app


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--get-delay-ms", type=int, default=30)
    args = parser.parse_args()
    moto_app = DomainDispatcherApplication(create_backend_app)
    app = with_standin(moto_app, args.get_delay_ms / 1000)
    run_simple("127.0.0.1", args.port, app, threaded=True)


if __name__ == "__main__":
    main()
