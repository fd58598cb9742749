# Bakehouse — the two set-up commands are `make demo` and `make test`.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/bakehouse-target
VENV ?= $(HOME)/.cache/bakehouse-venv
PYICEBERG ?= pyiceberg[sql-sqlite,sql-postgres,pyarrow]==0.12.0
CARGO ?= cargo
BIN := $(CARGO_TARGET_DIR)/release/bakehouse

.PHONY: demo test unit interop postgres up down lint fmt build clean

## Run the whole pipeline embedded on a generated day (release build).
demo:
	$(CARGO) build --release -j2 -p bakehouse-cli
	$(BIN) demo

## Unit, handler, end-to-end and local-server tests, then the PyIceberg interop test. The
## servers start on 127.0.0.1 (installed when missing): PostgreSQL (Debian's package, a private
## cluster on :55432), the S3 server (s3s-fs, :18014) and the Kafka broker (tansu, :19092).
test: unit interop

PG_URL ?= postgres://bakehouse@127.0.0.1:55432/postgres
unit interop: export BAKEHOUSE_TEST_POSTGRES = $(PG_URL)
unit interop: export BAKEHOUSE_TEST_S3 = $(shell dev/s3.sh start)
unit: export BAKEHOUSE_TEST_KAFKA = $(shell dev/kafka.sh start | sed 's/^KAFKA_BOOTSTRAP_SERVERS=//')
unit: export BAKEHOUSE_BIN = $(BIN)

postgres:
	dev/postgres.sh start /tmp/bakehouse-pg 55432 >/dev/null

## The local servers on 127.0.0.1 (PostgreSQL, S3, Kafka), installed when missing; prints the
## environment to export: eval "$$(make -s up)"
up:
	@dev/up.sh

down:
	@dev/up.sh stop

unit: postgres
	$(CARGO) build --release -j2 -p bakehouse-cli
	$(CARGO) test -j2 --workspace

$(VENV)/.ready:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check "$(PYICEBERG)" pytest
	touch $@

## Reads every table the CLI wrote with PyIceberg (schemas, specs, counts, sums, filtered scans),
## on SQLite and PostgreSQL catalogs and on a local S3 server (s3s-fs, installed once by cargo).
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
