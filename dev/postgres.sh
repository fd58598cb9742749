#!/usr/bin/env bash
# Starts (or stops) a private PostgreSQL cluster for tests on 127.0.0.1, using Debian's
# postgresql package (installed if missing). Prints the catalog URL on start. Connections need
# the password of user `bakehouse` (SCRAM), generated once and kept in DIR.password (mode 0600),
# not left to trust every local user. The server offers TLS with a certificate for 127.0.0.1 and
# localhost, signed by a CA made for this cluster alone (DIR.ca.pem, for `sslrootcert`).
#   dev/postgres.sh start [DIR] [PORT]    dev/postgres.sh stop [DIR]
set -euo pipefail
cmd=${1:-start}
dir=${2:-/tmp/bakehouse-pg}
port=${3:-55432}
password_file="$dir.password"
ca_file="$dir.ca.pem"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$cmd" in
  start)
    if [ -z "$bin" ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
      bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    if [ -f "$dir/PG_VERSION" ] && [ ! -s "$password_file" ]; then
      # A cluster from before passwords (test data only): made again with one.
      as_pg "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
      rm -rf "$dir"
    fi
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
      (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$password_file")
      # initdb reads the password from a file of its own user; that copy is removed at once.
      pwfile=$(mktemp)
      cp "$password_file" "$pwfile"
      [ "$(id -u)" = 0 ] && chown postgres "$pwfile"
      as_pg "$bin/initdb" -D "$dir" -U bakehouse --auth=scram-sha-256 --pwfile="$pwfile" >/dev/null
      rm -f "$pwfile"
    fi
    if [ ! -s "$dir/server.crt" ] || [ ! -s "$ca_file" ]; then
      # The CA's key signs this one certificate and is then thrown away.
      work=$(mktemp -d)
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=bakehouse test CA" -keyout "$work/ca.key" -out "$work/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$work/ext"
      openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
        -CAcreateserial -days 3650 -extfile "$work/ext" -out "$work/server.crt" 2>/dev/null
      install -m 0600 "$work/server.key" "$dir/server.key"
      install -m 0644 "$work/server.crt" "$dir/server.crt"
      [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/server.key" "$dir/server.crt"
      install -m 0644 "$work/ca.pem" "$ca_file"
      rm -rf "$work"
      as_pg "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
    fi
    if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
      # A server killed with its session leaves a stale lock file behind.
      rm -f "$dir/postmaster.pid"
      as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c ssl=on \
          -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key" start >/dev/null
    fi
    echo "postgres://bakehouse:$(cat "$password_file")@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -n "$bin" ] && as_pg "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start|stop [DIR] [PORT]" >&2; exit 2 ;;
esac
