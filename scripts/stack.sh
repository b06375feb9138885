#!/usr/bin/env bash
# Local infrastructure for finmon: a single-node Apache Kafka broker (KRaft mode,
# combined broker+controller) on 127.0.0.1:9092 and PostgreSQL on 127.0.0.1:5432.
#
#   scripts/stack.sh up [kafka|postgres]     start (idempotent), wait until ready, print settings
#   scripts/stack.sh down [kafka|postgres]   stop (Kafka: SIGTERM, wait; PostgreSQL: pg_ctlcluster stop)
#   scripts/stack.sh status                  say what is up; exit 1 unless everything is
#   scripts/stack.sh env                     print `export FINMON_...=...` lines
#   scripts/stack.sh topics [ARGS...]        kafka-topics (default: --list)
#   scripts/stack.sh console-producer TOPIC [ARGS...]   Kafka's Java console producer, lines from stdin
#   scripts/stack.sh console-consumer TOPIC [ARGS...]   Kafka's Java console consumer
#   scripts/stack.sh clean                   stop Kafka and delete its data (PostgreSQL is left alone)
#   scripts/stack.sh cluster up|down|status|env|clean|kill N|stop N|start N|topics [ARGS...]
#                                            a separate 3-broker KRaft cluster (docs/stack.md)
#
# Kafka runs from the jars Maven resolves from Maven Central (stack/pom.xml), cached once in
# ${FINMON_CACHE:-~/.cache/finmon}/kafka-<version>/libs. State and logs live in
# ${FINMON_STACK_DIR:-<repo>/.stack}. See docs/stack.md.
#
# The cluster (`cluster up`) is three combined broker+controller nodes (a 3-voter quorum),
# brokers on 127.0.0.1:19092-19094 and controllers on 19192-19194
# (FINMON_CLUSTER_PORT_BASE), state in .stack/cluster/node-N. It shares nothing with the
# single broker, which keeps running; `make test` uses the single broker.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_SRC="$ROOT/stack"

KAFKA_VERSION="${FINMON_KAFKA_VERSION:-4.4.0}"
CACHE_DIR="${FINMON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/finmon}"
KAFKA_HOME="$CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_HOST=127.0.0.1
KAFKA_PORT="${FINMON_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${FINMON_KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_BOOTSTRAP="$KAFKA_HOST:$KAFKA_PORT"
KAFKA_HEAP="${FINMON_KAFKA_HEAP:--Xms256m -Xmx512m}"
TIMEOUT="${FINMON_STACK_TIMEOUT:-120}"

PG_HOST=127.0.0.1
PG_PORT=5432
PG_USER=finmon
PG_PASSWORD=finmon
PG_DATABASES=(finmon finmon_test)

STACK_DIR="${FINMON_STACK_DIR:-$ROOT/.stack}"
mkdir -p "$STACK_DIR"
STACK_DIR="$(cd "$STACK_DIR" && pwd)"
KAFKA_STATE="$STACK_DIR/kafka"
KAFKA_DATA="$KAFKA_STATE/data"
KAFKA_CONFIG="$KAFKA_STATE/server.properties"
KAFKA_PIDFILE="$KAFKA_STATE/kafka.pid"
LOG_DIR="$STACK_DIR/logs"
KAFKA_LOG="$LOG_DIR/kafka.log"

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    local rc="${1:-2}"
    if ((rc == 0)); then
        sed -n '5,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    else
        sed -n '5,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    fi
    exit "$rc"
}

# Serialise up/down/clean so two concurrent calls cannot start two brokers.
# Every daemon started while the lock is held gets `9>&-`, or it would keep the lock.
take_lock() {
    exec 9>"$STACK_DIR/.lock"
    flock -w 300 9 || die "another scripts/stack.sh holds $STACK_DIR/.lock"
}

port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

# ----------------------------------------------------------------------------- Kafka

ensure_java() {
    command -v "$JAVA" >/dev/null 2>&1 || die "java not found (Kafka $KAFKA_VERSION needs Java 17+: apt-get install -y openjdk-17-jre-headless)"
    local v major
    v="$("$JAVA" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
    major="${v%%.*}"
    [[ "$major" == 1 ]] && major="$(cut -d. -f2 <<<"$v")"
    [[ "$major" =~ ^[0-9]+$ && "$major" -ge 17 ]] || die "Kafka $KAFKA_VERSION needs Java 17+, found '$v' ($JAVA)"
}

# Fetch the broker + tools jars once into the cache; the pom's hash marks a complete copy.
ensure_kafka_libs() {
    local stamp want tmp
    stamp="$KAFKA_HOME/.complete"
    want="$(cat "$STACK_SRC/pom.xml" | sha256sum | cut -d' ' -f1) $KAFKA_VERSION"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -d "$KAFKA_LIBS" ]]; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "Maven (mvn) is needed once to fetch the Kafka jars: apt-get install -y maven"
    mkdir -p "$KAFKA_HOME"
    tmp="$KAFKA_HOME/libs.tmp.$$"
    rm -rf "$tmp"
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS (once)"
    mkdir -p "$LOG_DIR"
    if ! mvn -B -Dstyle.color=never -f "$STACK_SRC/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
            dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
            >"$LOG_DIR/mvn.log" 2>&1; then
        rm -rf "$tmp"
        grep -E 'ERROR' "$LOG_DIR/mvn.log" | head -n 20 >&2 || true
        die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (full output: $LOG_DIR/mvn.log)"
    fi
    ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "no kafka_2.13 jar in $tmp"; }
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    printf '%s\n' "$want" >"$stamp"
}

# The JVM for the command-line tools: small, quick to start, warnings only.
tool_java() {
    TOOL_CMD=("$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
        -Dlog4j2.shutdownHookEnabled=false
        "-Dlog4j2.configurationFile=$STACK_SRC/log4j2-tools.properties"
        -cp "$KAFKA_LIBS/*")
}

# Whether process $1 is a Kafka broker (a pid can be reused by anything after a crash).
is_kafka_process() {
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

kafka_pid() {
    local pid
    [[ -f "$KAFKA_PIDFILE" ]] || return 1
    pid="$(cat "$KAFKA_PIDFILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    is_kafka_process "$pid" || return 1
    printf '%s\n' "$pid"
}

# A real request (metadata + list topics), not just an open socket.
kafka_ready() {
    port_open "$KAFKA_HOST" "$KAFKA_PORT" || return 1
    tool_java
    timeout 30 "${TOOL_CMD[@]}" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "$KAFKA_BOOTSTRAP" --list >/dev/null 2>&1
}

write_kafka_config() {
    mkdir -p "$KAFKA_DATA" "$LOG_DIR"
    sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
        -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
        -e "s|@DATA_DIR@|$KAFKA_DATA|g" \
        "$STACK_SRC/server.properties" >"$KAFKA_CONFIG"
}

new_cluster_id() {
    # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding, not starting with '-'.
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$id" != -* && ${#id} -eq 22 ]] && break
    done
    printf '%s\n' "$id"
}

# Formats one node's KRaft storage: format_storage CLUSTER_ID CONFIG LOG_FILE [ARGS...]
format_storage() {
    local id="$1" config="$2" log_file="$3"
    shift 3
    tool_java
    if ! "${TOOL_CMD[@]}" kafka.tools.StorageTool format -t "$id" -c "$config" "$@" \
            >"$log_file" 2>&1; then
        cat "$log_file" >&2
        die "formatting KRaft storage for $config failed (see $log_file)"
    fi
}

format_kafka_storage() {
    [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
    local id
    id="$(new_cluster_id)"
    log "formatting KRaft storage in $KAFKA_DATA (cluster id $id)"
    format_storage "$id" "$KAFKA_CONFIG" "$LOG_DIR/kafka-format.log" --standalone
}

# Starts a broker JVM in its own session, detached: launch_broker HEAP CONFIG LOG PIDFILE
launch_broker() {
    local heap="$1" config="$2" log_file="$3" pidfile="$4"
    # shellcheck disable=SC2086  # the heap is a list of JVM flags
    setsid nohup "$JAVA" $heap -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
        -Djava.awt.headless=true -Dlog4j2.shutdownHookEnabled=false \
        "-Dlog4j2.configurationFile=$STACK_SRC/log4j2.properties" \
        "-Dkafka.logs.dir=$LOG_DIR" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$config" \
        </dev/null >"$log_file" 2>&1 9>&- &
    printf '%s\n' "$!" >"$pidfile"
}

# Signals a broker and waits up to 60 s for it to exit, then SIGKILLs it:
# stop_broker PID WHAT [SIGNAL]
stop_broker() {
    local pid="$1" what="$2" sig="${3:-TERM}" i
    log "stopping $what (pid $pid, SIG$sig)"
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$what still running after 60s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 1
    fi
}

# Java, the jars and TOOL_CMD, for the command-line tools.
kafka_tools() {
    ensure_java
    ensure_kafka_libs
    tool_java
}

# kafka-topics against BOOTSTRAP: run_topics BOOTSTRAP [ARGS...] (default --list)
run_topics() {
    local bootstrap="$1"
    shift
    kafka_tools
    (($# > 0)) || set -- --list
    exec "${TOOL_CMD[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" "$@"
}

wait_kafka() {
    local pid="${1:-}" deadline=$((SECONDS + TIMEOUT))
    while :; do
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            log "Kafka exited during startup; last lines of $KAFKA_LOG:"
            tail -n 40 "$KAFKA_LOG" >&2 || true
            rm -f "$KAFKA_PIDFILE"
            die "Kafka broker did not start (full log: $KAFKA_LOG)"
        fi
        # our own broker: no point asking before it logs that it has started
        if [[ -z "$pid" ]] || grep -q 'Kafka Server started' "$KAFKA_LOG" 2>/dev/null; then
            kafka_ready && return 0
        fi
        if ((SECONDS >= deadline)); then
            log "last lines of $KAFKA_LOG:"
            tail -n 40 "$KAFKA_LOG" >&2 || true
            die "Kafka did not accept requests on $KAFKA_BOOTSTRAP within ${TIMEOUT}s (log: $KAFKA_LOG)"
        fi
        sleep 1
    done
}

# Starts the broker unless it runs; kafka_wait then waits for it (postgres starts in between).
KAFKA_FOREIGN=0
kafka_start() {
    ensure_java
    ensure_kafka_libs
    local pid
    if pid="$(kafka_pid)"; then
        log "Kafka already running (pid $pid)"
        return 0
    fi
    rm -f "$KAFKA_PIDFILE"
    if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
        if kafka_ready; then
            log "WARNING: a Kafka broker not started from $STACK_DIR already answers on $KAFKA_BOOTSTRAP; using it"
            KAFKA_FOREIGN=1
            return 0
        fi
        die "port $KAFKA_PORT is taken by something that does not answer as a Kafka broker"
    fi
    port_open "$KAFKA_HOST" "$CONTROLLER_PORT" &&
        die "controller port $CONTROLLER_PORT is taken (set FINMON_KAFKA_CONTROLLER_PORT)"

    write_kafka_config
    format_kafka_storage
    [[ -f "$KAFKA_LOG" ]] && mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"

    log "starting Kafka $KAFKA_VERSION (KRaft) on $KAFKA_BOOTSTRAP; log: $KAFKA_LOG"
    launch_broker "$KAFKA_HEAP" "$KAFKA_CONFIG" "$KAFKA_LOG" "$KAFKA_PIDFILE"
}

kafka_wait() {
    ((KAFKA_FOREIGN)) && return 0
    local pid
    pid="$(kafka_pid)" || pid="$(cat "$KAFKA_PIDFILE" 2>/dev/null || echo 0)"
    wait_kafka "$pid"
    log "Kafka $KAFKA_VERSION up on $KAFKA_BOOTSTRAP (pid $pid)"
}

kafka_up() {
    kafka_start
    kafka_wait
}

# The broker listening on our port when its pidfile is not ours (another checkout's stack
# started it), found by its socket: `down` names it instead of saying Kafka is not running.
kafka_listener_pid() {
    local pid
    command -v ss >/dev/null || return 1
    pid="$(ss -Hltnp "sport = :$KAFKA_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    is_kafka_process "$pid" || return 1
    printf '%s\n' "$pid"
}

kafka_down() {
    local pid
    if ! pid="$(kafka_pid)"; then
        rm -f "$KAFKA_PIDFILE"
        if ! pid="$(kafka_listener_pid)"; then
            log "Kafka not running (from $STACK_DIR)"
            return 0
        fi
        # Not stopped from here: `up` would then start this checkout's broker, with its own
        # (empty) data directory, and every topic of the other one would seem lost.
        local config
        config="$(tr '\0' '\n' <"/proc/$pid/cmdline" | tail -n1)"
        log "the broker on $KAFKA_BOOTSTRAP (pid $pid) was started from another checkout ($config); stop it from there, or with: kill $pid"
        exit 3
    fi
    stop_broker "$pid" Kafka
    rm -f "$KAFKA_PIDFILE"
    log "Kafka stopped"
}

kafka_status() {
    local pid
    if pid="$(kafka_pid)"; then
        if kafka_ready; then
            echo "kafka: up ($KAFKA_BOOTSTRAP, Kafka $KAFKA_VERSION, pid $pid, log $KAFKA_LOG)"
            return 0
        fi
        echo "kafka: starting or unhealthy (pid $pid, not answering on $KAFKA_BOOTSTRAP; log $KAFKA_LOG)"
        return 1
    fi
    if kafka_ready; then
        echo "kafka: up ($KAFKA_BOOTSTRAP, not started from $STACK_DIR)"
        return 0
    fi
    echo "kafka: down"
    return 1
}

# ----------------------------------------------------------------------------- PostgreSQL

pg_installed() {
    command -v pg_ctlcluster >/dev/null 2>&1 && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

ensure_postgres_installed() {
    pg_installed && return 0
    [[ $EUID -eq 0 ]] || die "PostgreSQL server is not installed; as root: apt-get install -y postgresql"
    log "installing PostgreSQL from Debian (apt-get install postgresql)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q postgresql >&2 9>&-
    pg_installed || die "apt-get install postgresql did not provide pg_ctlcluster"
}

# Prints "VERSION NAME PORT STATUS" of the cluster on port 5432, else of the first one.
pg_cluster() {
    pg_lsclusters --no-header 2>/dev/null |
        awk -v p="$PG_PORT" '$3 == p {print $1, $2, $3, $4; found=1; exit}
                             NR == 1 {first = $1 " " $2 " " $3 " " $4}
                             END {if (!found && first != "") print first}'
}

pg_as_superuser() {
    if [[ "$(id -un)" == postgres ]]; then
        "$@"
    elif [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        sudo -n -u postgres -- "$@"
    fi
}

pg_sql() { pg_as_superuser psql -X -q -p "$PG_PORT" -d postgres -v ON_ERROR_STOP=1 -tA "$@"; }

postgres_up() {
    ensure_postgres_installed
    local ver name port status
    read -r ver name port status <<<"$(pg_cluster)" || true
    if [[ -z "${ver:-}" ]]; then
        ver="$(basename "$(ls -d /usr/lib/postgresql/*/ | sort -V | tail -n 1)")"
        name=main
        log "creating PostgreSQL cluster $ver/$name on port $PG_PORT"
        pg_createcluster "$ver" "$name" -p "$PG_PORT" >&2 9>&-
        read -r ver name port status <<<"$(pg_cluster)"
    fi
    [[ "$port" == "$PG_PORT" ]] || die "PostgreSQL cluster $ver/$name uses port $port, not $PG_PORT"
    local pglog="/var/log/postgresql/postgresql-$ver-$name.log"
    if [[ "$status" != online* ]]; then
        log "starting PostgreSQL $ver/$name; log: $pglog"
        pg_ctlcluster "$ver" "$name" start >&2 9>&- || die "pg_ctlcluster $ver $name start failed (see $pglog)"
    else
        log "PostgreSQL $ver/$name already running"
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 1; do
        ((SECONDS < deadline)) || die "PostgreSQL not ready on $PG_HOST:$PG_PORT after ${TIMEOUT}s (see $pglog)"
        sleep 1
    done

    pg_sql <<SQL >/dev/null
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  ELSE
    ALTER ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END
\$\$;
SQL
    local db
    for db in "${PG_DATABASES[@]}"; do
        if [[ -z "$(pg_sql -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]]; then
            log "creating database $db"
            pg_sql -c "CREATE DATABASE $db OWNER $PG_USER" >/dev/null
        else
            pg_sql -c "ALTER DATABASE $db OWNER TO $PG_USER" >/dev/null
        fi
    done
    log "PostgreSQL $ver up on $PG_HOST:$PG_PORT (role $PG_USER, databases ${PG_DATABASES[*]}); log: $pglog"
}

postgres_down() {
    pg_installed || { log "PostgreSQL not installed"; return 0; }
    local ver name port status
    read -r ver name port status <<<"$(pg_cluster)" || true
    if [[ -z "${ver:-}" || "$status" != online* ]]; then
        log "PostgreSQL not running"
        return 0
    fi
    log "stopping PostgreSQL $ver/$name"
    pg_ctlcluster "$ver" "$name" stop -m fast >&2
    log "PostgreSQL stopped"
}

postgres_status() {
    local ver name port status
    if pg_installed; then read -r ver name port status <<<"$(pg_cluster)" || true; fi
    if pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2 2>/dev/null; then
        echo "postgres: up ($PG_HOST:$PG_PORT, cluster ${ver:-?}/${name:-?}, log /var/log/postgresql/postgresql-${ver:-?}-${name:-?}.log)"
        return 0
    fi
    echo "postgres: down"
    return 1
}

# ----------------------------------------------------------------------------- 3-broker cluster

CLUSTER_NODES=(1 2 3)
CLUSTER_PORT_BASE="${FINMON_CLUSTER_PORT_BASE:-19092}"
CLUSTER_HEAP="${FINMON_CLUSTER_HEAP:--Xms128m -Xmx384m}"
CLUSTER_STATE="$STACK_DIR/cluster"

node_port() { echo $((CLUSTER_PORT_BASE + $1 - 1)); }
node_controller_port() { echo $((CLUSTER_PORT_BASE + 100 + $1 - 1)); }
node_dir() { echo "$CLUSTER_STATE/node-$1"; }
node_log() { echo "$LOG_DIR/cluster-node-$1.log"; }
cluster_bootstrap() {
    local n out=()
    for n in "${CLUSTER_NODES[@]}"; do out+=("$KAFKA_HOST:$(node_port "$n")"); done
    (IFS=,; echo "${out[*]}")
}

check_node() {
    [[ "${1:-}" =~ ^[0-9]+$ ]] && ((1 <= $1 && $1 <= ${#CLUSTER_NODES[@]})) ||
        die "broker number must be 1..${#CLUSTER_NODES[@]}, got '${1:-}'"
}

node_pid() {
    local pid file
    file="$(node_dir "$1")/kafka.pid"
    [[ -f "$file" ]] || return 1
    pid="$(cat "$file" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && is_kafka_process "$pid" || return 1
    printf '%s\n' "$pid"
}

write_node_config() {
    local n="$1" dir voters="" m
    dir="$(node_dir "$n")"
    for m in "${CLUSTER_NODES[@]}"; do
        voters+="${voters:+,}$m@$KAFKA_HOST:$(node_controller_port "$m")"
    done
    mkdir -p "$dir/data" "$LOG_DIR"
    sed -e "s|@NODE_ID@|$n|g" -e "s|@VOTERS@|$voters|g" \
        -e "s|@PORT@|$(node_port "$n")|g" \
        -e "s|@CONTROLLER_PORT@|$(node_controller_port "$n")|g" \
        -e "s|@DATA_DIR@|$dir/data|g" \
        "$STACK_SRC/cluster.properties" >"$dir/server.properties"
}

# All nodes share one cluster id, written once; a node's storage is formatted once.
format_cluster_storage() {
    local id_file="$CLUSTER_STATE/cluster.id" n dir id
    [[ -f "$id_file" ]] || new_cluster_id >"$id_file"
    id="$(cat "$id_file")"
    for n in "${CLUSTER_NODES[@]}"; do
        dir="$(node_dir "$n")"
        [[ -f "$dir/data/meta.properties" ]] && continue
        log "formatting KRaft storage of cluster node $n (cluster id $id)"
        format_storage "$id" "$dir/server.properties" "$LOG_DIR/cluster-format-$n.log"
    done
}

node_start() {
    local n="$1" pid log_file
    if pid="$(node_pid "$n")"; then
        log "cluster node $n already running (pid $pid)"
        return 0
    fi
    port_open "$KAFKA_HOST" "$(node_port "$n")" &&
        die "port $(node_port "$n") is taken (set FINMON_CLUSTER_PORT_BASE)"
    port_open "$KAFKA_HOST" "$(node_controller_port "$n")" &&
        die "controller port $(node_controller_port "$n") is taken (set FINMON_CLUSTER_PORT_BASE)"
    write_node_config "$n"
    log_file="$(node_log "$n")"
    [[ -f "$log_file" ]] && mv -f "$log_file" "$log_file.1"
    log "starting cluster node $n: broker $KAFKA_HOST:$(node_port "$n"), controller :$(node_controller_port "$n"); log: $log_file"
    launch_broker "$CLUSTER_HEAP" "$(node_dir "$n")/server.properties" "$log_file" \
        "$(node_dir "$n")/kafka.pid"
}

# Up once every node that runs has said it started and the cluster answers a metadata
# request listing all of them (a broker counts only once it has joined).
cluster_wait() {
    local deadline=$((SECONDS + TIMEOUT)) n pid started
    while :; do
        started=1
        for n in "${CLUSTER_NODES[@]}"; do
            pid="$(cat "$(node_dir "$n")/kafka.pid" 2>/dev/null || echo 0)"
            if ! kill -0 "$pid" 2>/dev/null; then
                tail -n 40 "$(node_log "$n")" >&2 || true
                die "cluster node $n exited during startup (log: $(node_log "$n"))"
            fi
            grep -q 'Kafka Server started' "$(node_log "$n")" 2>/dev/null || started=0
        done
        if ((started)) && cluster_ready; then
            return 0
        fi
        if ((SECONDS >= deadline)); then
            die "the cluster did not come up within ${TIMEOUT}s (logs: $LOG_DIR/cluster-node-*.log)"
        fi
        sleep 1
    done
}

cluster_ready() {
    tool_java
    local brokers
    brokers="$(timeout 30 "${TOOL_CMD[@]}" org.apache.kafka.tools.BrokerApiVersionsCommand \
        --bootstrap-server "$(cluster_bootstrap)" 2>/dev/null | grep -c '^127.0.0.1:.* (id: ' || true)"
    [[ "$brokers" == "${#CLUSTER_NODES[@]}" ]]
}

cluster_up() {
    ensure_java
    ensure_kafka_libs
    local n
    mkdir -p "$CLUSTER_STATE"
    for n in "${CLUSTER_NODES[@]}"; do write_node_config "$n"; done
    format_cluster_storage
    for n in "${CLUSTER_NODES[@]}"; do node_start "$n"; done
    cluster_wait
    log "cluster up: brokers $(cluster_bootstrap) (3 KRaft voters)"
}

node_stop() {
    local n="$1" pid
    if ! pid="$(node_pid "$n")"; then
        log "cluster node $n not running"
        return 0
    fi
    stop_broker "$pid" "cluster node $n" "${2:-TERM}"
    rm -f "$(node_dir "$n")/kafka.pid"
}

cluster_down() {
    local n pid pids=()
    # SIGTERM all at once: stopped one by one, the last brokers wait for a quorum that is gone
    for n in "${CLUSTER_NODES[@]}"; do
        if pid="$(node_pid "$n")"; then kill -TERM "$pid" 2>/dev/null || true; pids+=("$n"); fi
    done
    for n in "${pids[@]}"; do node_stop "$n"; done
    log "cluster stopped"
}

cluster_status() {
    local n pid rc=0
    for n in "${CLUSTER_NODES[@]}"; do
        if pid="$(node_pid "$n")"; then
            echo "cluster node $n: running (pid $pid, $KAFKA_HOST:$(node_port "$n"), log $(node_log "$n"))"
        else
            echo "cluster node $n: down"
            rc=1
        fi
    done
    if ((rc == 0)) && ! cluster_ready; then
        echo "cluster: not every broker answers on $(cluster_bootstrap)"
        rc=1
    fi
    return "$rc"
}

cluster_command() {
    local sub="${1:-}"
    shift || true
    case "$sub" in
        up) take_lock; cluster_up ;;
        down) take_lock; cluster_down ;;
        status) cluster_status ;;
        env)
            echo "export FINMON_KAFKA__BOOTSTRAP_SERVERS='[\"$(cluster_bootstrap | sed 's/,/", "/g')\"]'"
            echo "export FINMON_TEST_KAFKA_CLUSTER='$(cluster_bootstrap)'"
            ;;
        kill) check_node "${1:-}"; node_stop "$1" KILL ;;
        stop) check_node "${1:-}"; node_stop "$1" TERM ;;
        start)
            check_node "${1:-}"
            ensure_java
            ensure_kafka_libs
            node_start "$1"
            local deadline=$((SECONDS + TIMEOUT))
            until cluster_ready; do
                ((SECONDS < deadline)) || die "cluster node $1 did not rejoin within ${TIMEOUT}s"
                sleep 1
            done
            log "cluster node $1 rejoined"
            ;;
        topics) run_topics "$(cluster_bootstrap)" "$@" ;;
        clean)
            take_lock
            cluster_down
            log "deleting cluster data in $CLUSTER_STATE"
            rm -rf "$CLUSTER_STATE"
            ;;
        *) die "usage: scripts/stack.sh cluster up|down|status|env|clean|kill N|stop N|start N|topics [ARGS...]" ;;
    esac
}

# ----------------------------------------------------------------------------- commands

print_settings() {
    local prefix="${1:-}" q="${2:-}"
    local dsn="postgresql+psycopg://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT"
    # monitor.settings parses list fields from the environment as JSON.
    echo "${prefix}FINMON_KAFKA__BOOTSTRAP_SERVERS=${q}[\"$KAFKA_BOOTSTRAP\"]${q}"
    echo "${prefix}FINMON_DATABASE__URL=${q}$dsn/finmon${q}"
    echo "${prefix}FINMON_KAFKA_BOOTSTRAP=${q}$KAFKA_BOOTSTRAP${q}"
    echo "${prefix}FINMON_TEST_DATABASE_URL=${q}$dsn/finmon_test${q}"
}

components() {
    if (($# == 0)); then echo "postgres kafka"; return; fi
    local c
    for c in "$@"; do
        case "$c" in kafka | postgres) ;; *) die "unknown component '$c' (kafka, postgres)" ;; esac
    done
    echo "$*"
}

cmd="${1:-}"
[[ -n "$cmd" ]] || usage
shift

case "$cmd" in
    up)
        take_lock
        comps=" $(components "$@") "
        # the broker's JVM warms up while PostgreSQL starts
        [[ "$comps" == *" kafka "* ]] && kafka_start
        [[ "$comps" == *" postgres "* ]] && postgres_up
        [[ "$comps" == *" kafka "* ]] && kafka_wait
        print_settings
        ;;
    down)
        take_lock
        for c in $(components "$@"); do "${c}_down"; done
        ;;
    status)
        rc=0
        for c in kafka postgres; do "${c}_status" || rc=1; done
        exit "$rc"
        ;;
    env)
        print_settings "export " "'"
        ;;
    topics) run_topics "$KAFKA_BOOTSTRAP" "$@" ;;
    console-producer | console-consumer)
        (($# >= 1)) || die "usage: scripts/stack.sh $cmd TOPIC [ARGS...]"
        topic="$1"
        shift
        kafka_tools
        if [[ "$cmd" == console-producer ]]; then
            cls=org.apache.kafka.tools.ConsoleProducer
        else
            cls=org.apache.kafka.tools.consumer.ConsoleConsumer
        fi
        exec "${TOOL_CMD[@]}" "$cls" --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic" "$@"
        ;;
    clean)
        take_lock
        kafka_down
        log "deleting Kafka data in $KAFKA_STATE"
        rm -rf "$KAFKA_STATE"
        ;;
    cluster) cluster_command "$@" ;;
    -h | --help | help) usage 0 ;;
    *) usage ;;
esac
