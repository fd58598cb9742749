#!/usr/bin/env bash
# Starts (or stops) a local S3-compatible server for tests on 127.0.0.1: s3s-fs from crates.io
# (installed with cargo when missing, ~4 min once), serving bucket `lake` from a folder.
#   dev/s3.sh start [DIR] [PORT]    dev/s3.sh stop [DIR]
# Prints the settings to export on start. Test credentials only; never for real data.
set -euo pipefail
cmd=${1:-start}
dir=$(realpath -m "${2:-/tmp/bakehouse-s3}")
port=${3:-18014}
key=bakehouse
secret=bakehouse-test-secret
case "$cmd" in
  start)
    if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
      cargo install s3s-fs --version 0.14.1 --features binary --locked -j2 >&2
    fi
    bin=$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")
    mkdir -p "$dir/lake"
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      # Started from its own folder: s3s-fs resolves every request against its working
      # directory, so a checkout deleted under a server left running would fail every request.
      (cd "$dir" && exec nohup "$bin" --host 127.0.0.1 --port "$port" --access-key "$key" \
        --secret-key "$secret" "$dir" >"$dir.log" 2>&1) &
      echo $! >"$dir.pid"
      for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    fi
    echo "AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret"
    ;;
  stop)
    [ -f "$dir.pid" ] && kill "$(cat "$dir.pid")" 2>/dev/null || true
    rm -f "$dir.pid"
    ;;
  *) echo "usage: $0 start|stop [DIR] [PORT]" >&2; exit 2 ;;
esac
