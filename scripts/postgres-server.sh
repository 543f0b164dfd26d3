#!/usr/bin/env bash
# postgres-server.sh - a private PostgreSQL cluster for the DuckLake catalog tests (several writers).
#
#   postgres-server.sh start    install PostgreSQL if missing, start the cluster, write the env file
#   postgres-server.sh stop     stop the cluster, only if this script started it (its PID)
#   postgres-server.sh status   exit 0 if the cluster answers; print its state
#   postgres-server.sh env      print the env file
#
# What runs: PostgreSQL from Debian's `postgresql` package, a cluster of its own (initdb/pg_ctl,
# not Debian's main cluster nor the CKAN test cluster), listening on 127.0.0.1 only, with a
# database `partage_lake` owned by a role `partage` that has a random password and CREATEDB
# (the tests create one database per test). As root the server runs as the `postgres` OS user;
# when that user cannot enter $PARTAGE_PG_HOME (e.g. under /root) the cluster's files go to
# /var/lib/postgresql/partage-pg/<hash>, linked from $PARTAGE_PG_HOME/pgdata.
#
# Settings (environment):
#   PARTAGE_PG_HOME  state directory  (default: $HOME/.cache/partage-pg)
#   PARTAGE_PG_PORT  port             (default: 55433; remembered by `start` for stop/status)
#
# Output: $PARTAGE_PG_HOME/pg.env with PARTAGE_TEST_PG_URL, a libpq connection string that
# DuckLake takes as `ducklake:postgres:<string>` (the password is in it: the file is 0600).
set -Eeuo pipefail

PG_HOME=${PARTAGE_PG_HOME:-$HOME/.cache/partage-pg}
if [ -z "${PARTAGE_PG_PORT:-}" ] && [ -s "$PG_HOME/port" ]; then PARTAGE_PG_PORT=$(cat "$PG_HOME/port"); fi
PORT=${PARTAGE_PG_PORT:-55433}
ENV_FILE="$PG_HOME/pg.env"
PID_FILE="$PG_HOME/started.pid"  # the postmaster this script started; `stop` touches nothing else
DB_NAME=partage_lake
DB_USER=partage

log() { printf '[postgres-server] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }
as_pg() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

bindir() {  # the newest installed server's binaries
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/psql" ] && { echo "$d"; return 0; }
    done
    return 1
}

install_postgres() {
    bindir >/dev/null && return 0
    if ! is_root || ! command -v apt-get >/dev/null; then
        die "PostgreSQL is not installed: run as root (or: sudo apt-get install postgresql)"
    fi
    log "apt-get install postgresql"
    mkdir -p "$PG_HOME"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; } \
        >"$PG_HOME/apt.log" 2>&1 || die "apt-get install postgresql failed (see $PG_HOME/apt.log)"
    bindir >/dev/null || die "postgresql installed but no server binaries under /usr/lib/postgresql"
}

data_dir() {  # data_dir [create] -> the cluster's directory (following the link made as root)
    local link="$PG_HOME/pgdata"
    if [ -L "$link" ]; then readlink "$link"; return 0; fi
    if [ "${1:-}" = create ] && is_root && [ ! -e "$link" ] && ! runuser -u postgres -- test -x "$PG_HOME"; then
        local dir
        dir="/var/lib/postgresql/partage-pg/$(printf '%s' "$PG_HOME" | md5sum | cut -c1-12)"
        mkdir -p "$dir"
        chown postgres:postgres "$(dirname "$dir")" "$dir"
        ln -sfn "$dir" "$link"
        echo "$dir"; return 0
    fi
    echo "$link"
}

started_pid() {  # the PID this script started, if that postmaster still runs this cluster
    local pid dir
    [ -s "$PID_FILE" ] || return 1
    pid=$(cat "$PID_FILE"); dir=$(data_dir)
    [[ "$pid" =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-D $dir" || return 1
    echo "$pid"
}

answers() { as_pg "$(bindir)/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres 2>/dev/null; }

psql_super() {  # through the cluster's own socket, as its superuser (peer authentication)
    as_pg "$(bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h "$(data_dir)" -p "$PORT" -U "$SUPER" -d postgres "$@"
}

cmd_start() {
    install_postgres
    mkdir -p "$PG_HOME"; chmod 700 "$PG_HOME"
    local bin dir pw
    bin=$(bindir); dir=$(data_dir create)
    SUPER=$(is_root && echo postgres || id -un)
    if is_root; then id postgres >/dev/null 2>&1 || die "no 'postgres' OS user (reinstall the postgresql package)"; fi
    if [ ! -f "$dir/PG_VERSION" ]; then
        log "initdb $dir ($("$bin/postgres" --version))"
        mkdir -p "$dir"; chmod 700 "$dir"
        is_root && chown postgres:postgres "$dir"
        as_pg "$bin/initdb" -D "$dir" -U "$SUPER" -E UTF8 --locale=C.UTF-8 --auth-local=peer \
            --auth-host=scram-sha-256 >"$PG_HOME/initdb.log" 2>&1 || die "initdb failed (see $PG_HOME/initdb.log)"
    fi
    if started_pid >/dev/null; then
        log "already running (pid $(cat "$PID_FILE"), port $PORT)"
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && die "port $PORT is used by another process (set PARTAGE_PG_PORT)"
        log "starting PostgreSQL on 127.0.0.1:$PORT"
        as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
            -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='$dir' -c max_connections=200" \
            start >/dev/null || die "PostgreSQL did not start (see $dir/server.log)"
        head -1 "$dir/postmaster.pid" >"$PID_FILE"
        echo "$PORT" >"$PG_HOME/port"
    fi
    umask 077
    [ -s "$PG_HOME/password" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | cut -c1-32 >"$PG_HOME/password"
    pw=$(cat "$PG_HOME/password")
    if [ "$(psql_super -tAc "SELECT 1 FROM pg_roles WHERE rolname='$DB_USER'")" = 1 ]; then
        psql_super -c "ALTER ROLE $DB_USER LOGIN CREATEDB PASSWORD '$pw'"
    else
        psql_super -c "CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$pw'"
    fi
    if [ "$(psql_super -tAc "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'")" != 1 ]; then
        psql_super -c "CREATE DATABASE $DB_NAME OWNER $DB_USER ENCODING 'UTF8' TEMPLATE template0"
    fi
    printf 'PARTAGE_TEST_PG_URL=%s\n' "postgresql://$DB_USER:$pw@127.0.0.1:$PORT/$DB_NAME" \
        >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    log "ready: 127.0.0.1:$PORT database $DB_NAME; env file: $ENV_FILE"
}

cmd_stop() {
    local pid
    if ! bindir >/dev/null || ! pid=$(started_pid); then
        log "not started by this script (nothing to stop)"; rm -f "$PID_FILE"; return 0
    fi
    log "stopping PostgreSQL (pid $pid)"
    as_pg "$(bindir)/pg_ctl" -D "$(data_dir)" -m fast -w -t 60 stop >/dev/null || kill -TERM "$pid" 2>/dev/null || true
    rm -f "$PID_FILE" "$ENV_FILE"  # a URL to a stopped server would only turn skips into connection errors
}

cmd_status() {
    if bindir >/dev/null && started_pid >/dev/null && answers; then
        echo "postgresql: running (pid $(cat "$PID_FILE"), 127.0.0.1:$PORT, data $(data_dir))"
        echo "env file:   $ENV_FILE"
        return 0
    fi
    echo "postgresql: stopped"
    return 3
}

case "${1:-}" in
    start)  cmd_start ;;
    stop)   cmd_stop ;;
    status) cmd_status ;;
    env)    [ -f "$ENV_FILE" ] && cat "$ENV_FILE" || die "no env file; run: $0 start" ;;
    *)      sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
