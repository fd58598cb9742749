# Bakehouse — the two set-up commands are `make demo` and `make test`.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/bakehouse-target
VENV ?= $(HOME)/.cache/bakehouse-venv
PYICEBERG ?= pyiceberg[sql-sqlite,sql-postgres,pyarrow,pyiceberg-core]==0.12.0
# The venv's marker names its contents: a change of packages makes a new one.
VENV_READY := $(VENV)/.ready-pyiceberg-core-pillow-msgspec
CARGO ?= cargo
BIN := $(CARGO_TARGET_DIR)/local/bakehouse
LAMBDA_VENV ?= $(HOME)/.cache/bakehouse-lambda-venv
DEPLOY_VENV ?= $(HOME)/.cache/bakehouse-deploy-venv
FUNCTIONS := ingest bronze-to-silver silver-to-gold maintenance fetch-weather
LAMBDA_DIR := target/lambda
ARCH ?= x86-64

.PHONY: demo test unit interop postgres chromium up down lint lint-template package fmt build install build-lambda bench clean

## Run the whole pipeline embedded on a generated day (release build).
demo:
	$(CARGO) build --profile local -j2 -p bakehouse-cli
	$(BIN) demo

## Unit, handler, end-to-end and local-server tests, then the PyIceberg interop test. The
## servers start on 127.0.0.1 (installed when missing): PostgreSQL (Debian's package, a private
## cluster on :55432), the S3 server (s3s-fs, :18014), the Kafka broker (tansu, :19092) and
## moto's server for Glue with its VersionId stand-in (PyPI, :15001 and :15002).
test: unit interop

# The private cluster's URL, its password included (dev/postgres.sh keeps it in a 0600 file);
# starting the cluster when it is not running.
PG_DIR := /tmp/bakehouse-pg
PG_URL ?= $(shell dev/postgres.sh start $(PG_DIR) 55432)
unit interop: export BAKEHOUSE_TEST_POSTGRES = $(PG_URL)
unit: export BAKEHOUSE_TEST_POSTGRES_CA = $(PG_DIR).ca.pem
unit interop: export BAKEHOUSE_TEST_S3 = $(shell dev/s3.sh start)
unit: export BAKEHOUSE_TEST_KAFKA = $(shell dev/kafka.sh start | sed 's/^KAFKA_BOOTSTRAP_SERVERS=//')
unit: export BAKEHOUSE_TEST_GLUE = $(shell dev/moto.sh start | sed 's/^BAKEHOUSE_TEST_GLUE=\([^ ]*\) .*/\1/')
unit: export BAKEHOUSE_TEST_GLUE_STANDIN = $(shell dev/moto.sh start | sed 's/.*BAKEHOUSE_TEST_GLUE_STANDIN=//')
unit: export BAKEHOUSE_BIN = $(BIN)
unit: export BAKEHOUSE_LAMBDA_DIR = $(CURDIR)/$(LAMBDA_DIR)
unit: export CARGO_LAMBDA = $(LAMBDA_VENV)/bin/cargo-lambda

postgres:
	dev/postgres.sh start $(PG_DIR) 55432 >/dev/null

## The local servers on 127.0.0.1 (PostgreSQL, S3, Kafka), installed when missing; prints the
## environment to export: eval "$$(make -s up)"
up:
	@dev/up.sh

down:
	@dev/up.sh stop

unit: postgres build-lambda
	$(CARGO) build --profile local -j2 -p bakehouse-cli
	$(CARGO) test -j2 --workspace

$(VENV_READY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check "$(PYICEBERG)" pytest pillow==13.0.0 msgspec==0.23.0
	touch $@

## Headless Chromium (Debian's package, installed when missing) renders `bakehouse report`.
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

## Reads every table the CLI wrote with PyIceberg (schemas, specs, counts, sums, filtered scans),
## on SQLite and PostgreSQL catalogs and on a local S3 server (s3s-fs, installed once by cargo);
## checks `status` and the rendered `report` after the demo, and `replay`.
interop: postgres chromium $(VENV_READY)
	$(CARGO) build --profile local -j2 -p bakehouse-cli
	BAKEHOUSE_BIN=$(BIN) $(VENV)/bin/python -m pytest -q tests/interop

## Benchmarks (docs/performance.md): Bakehouse against the floor and the Python peer, as whole
## processes on generated inputs (BENCH_EVENTS, default 1,000,000); a 10k batch on lakes of
## millions of rows (built once, cached); the event→gold latency through `bakehouse local` on
## the local servers (skipped unless `make up` installed them). BENCH_CASES=scale,latency picks.
bench: $(VENV_READY) postgres
	$(CARGO) build --profile local -j2 -p bakehouse-cli -p bench-floor -p bench-probe
	@BAKEHOUSE_BIN=$(BIN) BENCH_FLOOR=$(CARGO_TARGET_DIR)/local/bench-floor \
		BENCH_PROBE=$(CARGO_TARGET_DIR)/local/bench-probe \
		BENCH_PYTHON=$(VENV)/bin/python BENCH_POSTGRES=$(PG_URL) BENCH_S3="$$(dev/s3.sh start)" \
		python3 bench/run.py

## Format, clippy, the template's linters and its packaging (below).
lint: lint-template package
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -j2 --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Lambda tooling from PyPI, pinned: cargo-lambda (brings zig) and cfn-lint.
$(LAMBDA_VENV)/.ready:
	python3 -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/pip install -q --disable-pip-version-check cargo-lambda==1.9.2 cfn-lint==1.51.0
	touch $@

## The deploy tools from PyPI, pinned, apart from cfn-lint 1.51 (SAM CLI needs a later one):
## SAM CLI (>= 1.160 for the template's Fn::ForEach) and checkov.
$(DEPLOY_VENV)/.ready:
	python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install -q --disable-pip-version-check aws-sam-cli==1.170.0 checkov==3.2.459
	touch $@

SAM := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 $(DEPLOY_VENV)/bin/sam

## cfn-lint, SAM's own validation and checkov: no finding (each skipped check is explained in
## the template, next to its resource). checkov reads the template with its Fn::ForEach loops
## expanded by cfn-lint (dev/expand_foreach.py), as it does not expand them itself.
lint-template: $(LAMBDA_VENV)/.ready $(DEPLOY_VENV)/.ready
	$(LAMBDA_VENV)/bin/cfn-lint template.yaml
	$(SAM) validate --lint
	mkdir -p target
	$(LAMBDA_VENV)/bin/python dev/expand_foreach.py template.yaml >target/template.expanded.json
	$(DEPLOY_VENV)/bin/checkov -f target/template.expanded.json --framework cloudformation \
		--compact --quiet --skip-download

## `sam build` and `sam package` of the real template, as docs/deploy.md has a user run them,
## with the artifacts uploaded to the local S3 server (bucket `lake`) instead of an account.
package: build-lambda $(DEPLOY_VENV)/.ready
	$(SAM) build
	env $$(dev/s3.sh start) $(SAM) package --s3-bucket lake --s3-prefix sam-artifacts \
		--no-progressbar --output-template-file .aws-sam/packaged.yaml
	@test "$$(grep -c 'CodeUri: s3://lake/sam-artifacts/' .aws-sam/packaged.yaml)" = 5 || \
		{ echo ".aws-sam/packaged.yaml: expected 5 functions' code in s3://lake/sam-artifacts/" >&2; exit 1; }

## `sam build` runs these (the template's BuildMethod: makefile, in source): each copies the
## bootstrap `make build-lambda` built.
sam-artifact = test -x $(LAMBDA_DIR)/$(1)/bootstrap || \
	{ echo "no $(LAMBDA_DIR)/$(1)/bootstrap: run make build-lambda first" >&2; exit 1; }; \
	cp $(LAMBDA_DIR)/$(1)/bootstrap "$(ARTIFACTS_DIR)/"
build-IngestFunction: ; @$(call sam-artifact,ingest)
build-BronzeToSilverFunction: ; @$(call sam-artifact,bronze-to-silver)
build-SilverToGoldFunction: ; @$(call sam-artifact,silver-to-gold)
build-MaintenanceFunction: ; @$(call sam-artifact,maintenance)
build-FetchWeatherFunction: ; @$(call sam-artifact,fetch-weather)

## The four functions for provided.al2023 (release profile: LTO, one codegen unit, stripped),
## into target/lambda/<function>/bootstrap, which `sam build` packages. ARCH=arm64 cross-compiles
## (the tests run the bootstraps, so they need this machine's x86-64). Linked without unwind
## tables (functions/no-unwind-tables.ld, relative: rustc links in the workspace root; RUSTFLAGS
## reach only the target's crates, not build scripts, as cargo-lambda passes --target).
build-lambda: $(LAMBDA_VENV)/.ready
	PATH="$(LAMBDA_VENV)/bin:$$PATH" RUSTFLAGS="-C link-arg=-Wl,-T,functions/no-unwind-tables.ld" \
		$(CARGO) lambda build --release --$(ARCH) -j2 \
		$(addprefix -p ,$(FUNCTIONS)) --lambda-dir $(LAMBDA_DIR)
	@for f in $(FUNCTIONS); do \
		stat -c '%s' $(LAMBDA_DIR)/$$f/bootstrap | awk -v f=$$f '{printf "%-17s bootstrap %5.1f MiB (%4.1f MB)\n", f, $$1/1048576, $$1/1e6}'; \
	done

build:
	$(CARGO) build --profile local -j2 --workspace

## `bakehouse` on the PATH (~/.cargo/bin), built as `make demo` builds it.
install:
	$(CARGO) install --locked --profile local --path cli

clean:
	rm -rf .bakehouse
