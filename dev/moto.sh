#!/usr/bin/env bash
# Starts (or stops) moto's server for the Glue tests on 127.0.0.1: plain moto (Glue's real
# request and response shapes, S3 on the same endpoint) and the VersionId stand-in
# (dev/glue_versionid_standin.py: moto refusing a stale VersionId, as AWS Glue does). moto comes
# from PyPI, pinned, into its own venv (installed when missing). Prints the settings to export.
#   dev/moto.sh start [PORT] [STANDIN_PORT]    dev/moto.sh stop
set -euo pipefail
cmd=${1:-start}
port=${2:-15001}
standin_port=${3:-15002}
venv="$HOME/.cache/bakehouse-moto-venv"
here=$(cd "$(dirname "$0")" && pwd)
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
case "$cmd" in
  start)
    if [ ! -f "$venv/.ready-5.2.6" ]; then
      python3 -m venv "$venv" >&2
      "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.2.6' >&2
      touch "$venv/.ready-5.2.6"
    fi
    if ! up "$port"; then
      nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >/tmp/bakehouse-moto.log 2>&1 &
      echo $! >/tmp/bakehouse-moto.pid
    fi
    if ! up "$standin_port"; then
      nohup "$venv/bin/python" "$here/glue_versionid_standin.py" "$standin_port" \
        >/tmp/bakehouse-moto-standin.log 2>&1 &
      echo $! >/tmp/bakehouse-moto-standin.pid
    fi
    for _ in $(seq 100); do up "$port" && up "$standin_port" && break; sleep 0.1; done
    echo "BAKEHOUSE_TEST_GLUE=http://127.0.0.1:$port BAKEHOUSE_TEST_GLUE_STANDIN=http://127.0.0.1:$standin_port"
    ;;
  stop)
    for pid in /tmp/bakehouse-moto.pid /tmp/bakehouse-moto-standin.pid; do
      [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
      rm -f "$pid"
    done
    ;;
  *) echo "usage: $0 start|stop [PORT] [STANDIN_PORT]" >&2; exit 2 ;;
esac
