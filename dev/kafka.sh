#!/usr/bin/env bash
# Starts (or stops) a local Kafka-compatible broker for tests on 127.0.0.1: tansu 0.6.0 from
# crates.io with its SQLite storage engine (installed with cargo when missing, ~15-20 min once;
# the other engines lose records, see ../shared/NOTES.md), then creates the three topics with 3
# partitions each, optionally under a name prefix.
#   dev/kafka.sh start [DIR] [PORT]    dev/kafka.sh topics PREFIX [PORT]    dev/kafka.sh stop [DIR]
# Prints the bootstrap setting to export on start.
set -euo pipefail
cmd=${1:-start}
port_default=19092
bin=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
install() {
  if [ ! -x "$bin" ]; then
    cargo install tansu --version 0.6.0 --locked --features libsql -j2 >&2
  fi
}
topics() {
  local prefix=$1 port=$2
  for topic in sales-events equipment-metrics inventory-updates; do
    # Exit 1 when the topic exists already: fine.
    "$bin" topic create "$prefix$topic" --broker "tcp://127.0.0.1:$port" --partitions 3 >/dev/null 2>&1 || true
  done
}
case "$cmd" in
  start)
    dir=${2:-/tmp/bakehouse-kafka}
    port=${3:-$port_default}
    install
    mkdir -p "$dir"
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      # exec: the recorded pid is the broker's, and no shell keeps the caller's stdout open.
      (cd "$dir" && exec "$bin" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine sqlite://tansu.db) \
        </dev/null >"$dir.log" 2>&1 &
      echo $! >"$dir.pid"
      for _ in $(seq 100); do
        "$bin" topic list --broker "tcp://127.0.0.1:$port" >/dev/null 2>&1 && break
        sleep 0.2
      done
    fi
    topics "" "$port"
    echo "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port"
    ;;
  topics)
    topics "${2:?prefix}" "${3:-$port_default}"
    ;;
  stop)
    dir=${2:-/tmp/bakehouse-kafka}
    [ -f "$dir.pid" ] && kill "$(cat "$dir.pid")" 2>/dev/null || true
    rm -f "$dir.pid"
    ;;
  *) echo "usage: $0 start|topics|stop …" >&2; exit 2 ;;
esac
