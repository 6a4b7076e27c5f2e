#!/usr/bin/env bash
# Throwaway PostgreSQL server for the test suite.
#
# Usage:
#   scripts/test-services.sh run -- CMD [ARGS...]
#       Start a fresh cluster, export CYCLEML_TEST_PG_URL, run CMD, stop the
#       cluster (always, also on failure or Ctrl-C) and exit with CMD's status.
#   scripts/test-services.sh start
#       Start a cluster and print shell `export` lines (use with eval):
#         eval "$(scripts/test-services.sh start)"
#   scripts/test-services.sh stop [DIR]
#       Stop the cluster in DIR (default: $CYCLEML_TEST_PG_DIR) and delete DIR.
#   scripts/test-services.sh ensure-binaries
#       Make sure the PostgreSQL server binaries and wrk are installed (apt if missing),
#       and Debian's chromium for the browser tests (scripts/browser.sh ensure).
#
# `run` also makes sure /usr/bin/chromium is there (scripts/browser.sh) and exports
# CYCLEML_REQUIRE_BROWSER=1, so the browser tests fail instead of skipping without it.
#
# The cluster lives in a fresh `mktemp -d` directory (data dir, unix socket,
# log), uses trust auth, listens only on 127.0.0.1 on a free port (from 55432
# upwards), has durability switched off for speed, and holds an empty
# database `cycleml_test` owned by the superuser `postgres`:
#   CYCLEML_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:PORT/cycleml_test
#
# Env knobs: CYCLEML_TEST_PG_PORT (first port to try, default 55432),
#            CYCLEML_TEST_PG_TIMEOUT (seconds to wait for startup, default 30).
set -euo pipefail

DB_NAME=cycleml_test
DB_SUPERUSER=postgres # role name inside the cluster (not the OS user)
FIRST_PORT="${CYCLEML_TEST_PG_PORT:-55432}"
START_TIMEOUT="${CYCLEML_TEST_PG_TIMEOUT:-30}"
MARKER=.cycleml-test-pg # file marking a dir as ours, so `stop` never deletes anything else

log() { echo "[test-services] $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# ---------------------------------------------------------------- binaries --

# Print the newest /usr/lib/postgresql/<ver>/bin that has initdb, if any.
find_pg_bin() {
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
        echo "$d"
    fi
}

# Install the Debian packages the tests need when they are missing: `postgresql`
# (server binaries) and `wrk` (the serving benchmark's load generator, whose
# harness has tests).
ensure_binaries() {
    local missing=()
    [[ -n "$(find_pg_bin)" ]] || missing+=(postgresql)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    [[ "$(id -u)" == 0 ]] || die "missing Debian package(s): ${missing[*]} (PostgreSQL server binaries in /usr/lib/postgresql/*/bin, wrk on PATH); install them (e.g. sudo apt-get install ${missing[*]})"
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available"
    log "installing with apt-get: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # (apt output goes to stderr: `start` keeps stdout for its export lines)
    apt-get update -q >&2
    export CYCLEML_APT_UPDATED=1 # scripts/browser.sh then skips its own apt-get update
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    [[ -n "$(find_pg_bin)" ]] || die "apt-get install postgresql did not provide /usr/lib/postgresql/*/bin/initdb"
    command -v wrk >/dev/null 2>&1 || die "apt-get install wrk did not provide wrk"
    # The Debian package creates and may start a system cluster ("main") on
    # port 5432. We don't need it: stop whatever the install just started.
    if command -v pg_lsclusters >/dev/null 2>&1; then
        pg_lsclusters --no-header 2>/dev/null | while read -r ver name _port status _rest; do
            if [[ "$status" == online* ]]; then
                log "stopping system cluster $ver/$name started by the package install"
                pg_ctlcluster "$ver" "$name" stop >&2 || true
            fi
        done
    fi
}

# ------------------------------------------------------------ run as user --

# PostgreSQL refuses to run as root. When we are root, run the server as
# `postgres` (created by the Debian package) or a dedicated system user.
PG_OS_USER=""
pick_os_user() {
    if [[ "$(id -u)" != 0 ]]; then
        PG_OS_USER="$(id -un)"
    elif id postgres >/dev/null 2>&1; then
        PG_OS_USER=postgres
    else
        if ! id cycleml-pg >/dev/null 2>&1; then
            log "creating system user cycleml-pg to run PostgreSQL"
            useradd --system --no-create-home --shell /usr/sbin/nologin cycleml-pg
        fi
        PG_OS_USER=cycleml-pg
    fi
}

# as_pg DIR CMD ARGS...: run CMD in DIR as $PG_OS_USER.
as_pg() {
    local dir="$1"
    shift
    if [[ "$(id -u)" != 0 ]]; then
        (cd "$dir" && "$@")
    elif command -v runuser >/dev/null 2>&1; then
        (cd "$dir" && runuser -u "$PG_OS_USER" -- "$@")
    else
        (cd "$dir" && su -s /bin/bash "$PG_OS_USER" -c "$(printf '%q ' "$@")")
    fi
}

# ----------------------------------------------------------------- start --

# True if something already accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Set by start_cluster:
PG_DIR=""  # temp dir: data/, socket, postgres.log
PG_PORT=""
PG_URL=""

start_cluster() {
    ensure_binaries
    pick_os_user
    local bin
    bin="$(find_pg_bin)"

    PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/cycleml-pg.XXXXXX")"
    touch "$PG_DIR/$MARKER"
    if [[ "$(id -u)" == 0 ]]; then chown -R "$PG_OS_USER" "$PG_DIR"; fi
    as_pg "$PG_DIR" test -w "$PG_DIR" ||
        die "user $PG_OS_USER cannot write $PG_DIR (is ${TMPDIR:-/tmp} accessible to it? set TMPDIR)"

    log "initdb in $PG_DIR/data ($bin, OS user $PG_OS_USER)"
    as_pg "$PG_DIR" "$bin/initdb" -D "$PG_DIR/data" -U "$DB_SUPERUSER" --auth=trust \
        -E UTF8 --locale=C --no-sync --no-instructions >"$PG_DIR/initdb.log" 2>&1 || {
        tail -n 30 "$PG_DIR/initdb.log" >&2
        die "initdb failed"
    }

    # Test-only settings: loopback only, socket in our dir, no durability.
    cat >>"$PG_DIR/data/postgresql.conf" <<CONF

# --- cycleml throwaway test cluster ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
max_connections = 200
CONF

    # Try ports upwards from FIRST_PORT; retry if we lose a race for the port.
    local port="$FIRST_PORT" attempt
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        while port_in_use "$port"; do port=$((port + 1)); done
        log "starting PostgreSQL on 127.0.0.1:$port"
        rm -f "$PG_DIR/postgres.log" # pg_ctl recreates it as $PG_OS_USER
        if as_pg "$PG_DIR" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" \
            -o "-p $port" -w -t "$START_TIMEOUT" start >/dev/null; then
            PG_PORT="$port"
            break
        fi
        if grep -q "could not bind\|Address already in use" "$PG_DIR/postgres.log"; then
            log "port $port is busy, trying the next one"
            port=$((port + 1))
            continue
        fi
        log "PostgreSQL failed to start; last lines of $PG_DIR/postgres.log:"
        tail -n 30 "$PG_DIR/postgres.log" >&2 || true
        stop_cluster "$PG_DIR"
        exit 1
    done
    if [[ -z "$PG_PORT" ]]; then
        stop_cluster "$PG_DIR"
        die "no free port found starting at $FIRST_PORT"
    fi

    # pg_ctl -w checked the socket; also wait for TCP on 127.0.0.1 (bounded).
    local waited=0
    until "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U "$DB_SUPERUSER" -d postgres; do
        if ((waited >= START_TIMEOUT)); then
            log "PostgreSQL not accepting connections after ${START_TIMEOUT}s; last lines of the log:"
            tail -n 30 "$PG_DIR/postgres.log" >&2 || true
            stop_cluster "$PG_DIR"
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done

    "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$DB_SUPERUSER" "$DB_NAME" ||
        { stop_cluster "$PG_DIR"; die "createdb $DB_NAME failed"; }

    PG_URL="postgresql+psycopg://$DB_SUPERUSER@127.0.0.1:$PG_PORT/$DB_NAME"
    log "ready: $PG_URL (pid $(head -n 1 "$PG_DIR/data/postmaster.pid"))"
}

# ------------------------------------------------------------------ stop --

# stop_cluster DIR: stop the server (pg_ctl, then by PID as a last resort)
# and delete DIR. Safe to call on a half-started cluster.
stop_cluster() {
    local dir="$1" bin pid
    [[ -n "$dir" && -d "$dir" ]] || return 0
    [[ -f "$dir/$MARKER" ]] || die "$dir is not a cycleml test cluster dir; not touching it"
    bin="$(find_pg_bin)"
    [[ -n "$PG_OS_USER" ]] || pick_os_user
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        pid="$(head -n 1 "$dir/data/postmaster.pid")"
        log "stopping PostgreSQL (pid $pid)"
        if ! as_pg "$dir" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1; then
            # pg_ctl failed: fall back to signals on the postmaster PID.
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 20); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.5
            done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -rf "$dir"
}

# ------------------------------------------------------------------- main --

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
run)
    [[ "${1:-}" == "--" ]] && shift
    [[ $# -gt 0 ]] || die "usage: $0 run -- CMD [ARGS...]"
    # Stop the cluster however we leave: normal exit, error, Ctrl-C, kill.
    trap 'stop_cluster "$PG_DIR"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    start_cluster
    export CYCLEML_TEST_PG_URL="$PG_URL"
    # -- browser tests (tests/browser): Debian's chromium, required under `run` --
    bash "$(dirname "${BASH_SOURCE[0]}")/browser.sh" ensure
    export CYCLEML_REQUIRE_BROWSER=1
    # -- end browser tests --
    status=0
    "$@" || status=$?
    exit "$status"
    ;;
start)
    trap '[[ -n "$PG_URL" ]] || stop_cluster "$PG_DIR"' EXIT # clean up a failed start
    start_cluster
    printf 'export CYCLEML_TEST_PG_URL=%q\n' "$PG_URL"
    printf 'export CYCLEML_TEST_PG_DIR=%q\n' "$PG_DIR"
    log "stop it with: $0 stop $PG_DIR"
    ;;
stop)
    dir="${1:-${CYCLEML_TEST_PG_DIR:-}}"
    [[ -n "$dir" ]] || die "usage: $0 stop DIR (or set CYCLEML_TEST_PG_DIR)"
    stop_cluster "$dir"
    ;;
ensure-binaries)
    ensure_binaries
    log "PostgreSQL binaries: $(find_pg_bin)"
    bash "$(dirname "${BASH_SOURCE[0]}")/browser.sh" ensure # browser tests
    log "browser: $(bash "$(dirname "${BASH_SOURCE[0]}")/browser.sh" version)"
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
