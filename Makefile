# Bakehouse — the two set-up commands are `make demo` and `make test`.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/bakehouse-target
VENV ?= $(HOME)/.cache/bakehouse-venv
PYICEBERG ?= pyiceberg[sql-sqlite,sql-postgres,pyarrow]==0.12.0
CARGO ?= cargo
BIN := $(CARGO_TARGET_DIR)/release/bakehouse

.PHONY: demo test unit interop postgres lint fmt build clean

## Run the whole pipeline embedded on a generated day (release build).
demo:
	$(CARGO) build --release -j2 -p bakehouse-cli
	$(BIN) demo

## Unit, handler and end-to-end tests, then the PyIceberg interop test. PostgreSQL (Debian's
## package, a private cluster on 127.0.0.1:55432) serves the PostgreSQL-catalog tests.
test: unit interop

PG_URL ?= postgres://bakehouse@127.0.0.1:55432/postgres
unit interop: export BAKEHOUSE_TEST_POSTGRES = $(PG_URL)

postgres:
	dev/postgres.sh start /tmp/bakehouse-pg 55432 >/dev/null

unit: postgres
	$(CARGO) test -j2 --workspace

$(VENV)/.ready:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check "$(PYICEBERG)" pytest
	touch $@

## Reads every table the CLI wrote with PyIceberg (schemas, specs, counts, sums, filtered scans),
## on SQLite and PostgreSQL catalogs and on a local S3 server (s3s-fs, installed once by cargo).
interop: export BAKEHOUSE_TEST_S3 = $(shell dev/s3.sh start)
interop: postgres $(VENV)/.ready
	$(CARGO) build --release -j2 -p bakehouse-cli
	BAKEHOUSE_BIN=$(BIN) $(VENV)/bin/python -m pytest -q tests/interop

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -j2 --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

build:
	$(CARGO) build --release -j2 --workspace

clean:
	rm -rf .bakehouse
