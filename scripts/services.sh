#!/usr/bin/env bash
# Start / stop the real Redis and Apache Kafka that the `services` tests need.
#
#   scripts/services.sh start   # install/resolve if needed, start (or reuse), wait until ready
#   scripts/services.sh stop    # stop both, wait for them to exit
#   scripts/services.sh env     # print `export ...` lines for the running services
#   scripts/services.sh status  # exit 0 when both are running and healthy
#
# Everything listens on 127.0.0.1 only, on free ports picked at start. All state (pidfiles, logs,
# data, the env file) lives in .services/ at the repo root; `start` writes .services/env with
#   export MINISENTRY_TEST_REDIS_URL=redis://127.0.0.1:PORT/0
#   export MINISENTRY_TEST_KAFKA_BOOTSTRAP=127.0.0.1:PORT
# so `. .services/env` (or `eval "$(scripts/services.sh env)"`) exports them.
#
# Knobs (environment):
#   PYTHON                        python used for the Kafka readiness check (confluent-kafka used
#                                 when importable there, else a stdlib Kafka-protocol probe); python3
#   MINISENTRY_KAFKA_VERSION      org.apache.kafka:kafka_2.13 version (default below)
#   MINISENTRY_KAFKA_HOME         cache folder (default $HOME/.cache/minisentry/kafka-<version>);
#                                 the jars go into its libs/ and are reused when present
#   MINISENTRY_SERVICES_TIMEOUT   seconds to wait for each service to be ready (default 120)
#   MINISENTRY_KAFKA_HEAP         broker heap (default 512m)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE="$ROOT/.services"
PYTHON=${PYTHON:-python3}
KAFKA_VERSION=${MINISENTRY_KAFKA_VERSION:-4.1.1}
# log4j-slf4j-impl (the SLF4J 1.x -> Log4j2 binding the Kafka tarball ships; the POM omits it).
LOG4J_VERSION=${MINISENTRY_LOG4J_VERSION:-2.24.3}
KAFKA_HOME=${MINISENTRY_KAFKA_HOME:-${HOME:-/root}/.cache/minisentry/kafka-$KAFKA_VERSION}
KAFKA_LIBS="$KAFKA_HOME/libs"
TIMEOUT=${MINISENTRY_SERVICES_TIMEOUT:-120}
KAFKA_HEAP=${MINISENTRY_KAFKA_HEAP:-512m}

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

# pid_alive PIDFILE PATTERN: the pid in PIDFILE is running and its command line contains PATTERN
# (guards against a recycled pid).
pid_alive() {
    local pidfile=$1 pattern=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"
}

# free_ports N: N distinct free TCP ports on 127.0.0.1, one per line.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
    s.close()
EOF
}

tail_log() { # FILE...
    local f
    for f in "$@"; do
        if [[ -s $f ]]; then
            printf -- '----- last lines of %s -----\n' "$f" >&2
            tail -n 40 "$f" >&2 || true
            printf -- '-----\n' >&2
        fi
    done
}

redis_ping() { # PORT
    [[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]
}

# kafka_ready PORT: a real metadata round trip that reports at least one broker.
kafka_ready() {
    # Instant refusal while the listener is not up yet (the checks below would wait for a timeout).
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
        "$1" >/dev/null 2>&1 || return 1
    if "$PYTHON" -c 'import confluent_kafka' >/dev/null 2>&1; then
        "$PYTHON" - "$1" <<'EOF' >/dev/null 2>&1
import sys
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": "127.0.0.1:" + sys.argv[1], "log_level": 0,
                     "logger": __import__("logging").getLogger("quiet")})
md = admin.list_topics(timeout=3)
sys.exit(0 if md.brokers else 1)
EOF
    else
        # No confluent-kafka: speak the protocol with the stdlib. ApiVersions v0 tells which
        # Metadata versions the broker serves; send a non-flexible one (v1..v8) and require >= 1
        # broker in the answer.
        python3 - "$1" <<'EOF' >/dev/null 2>&1
import socket, struct, sys

def call(sock, api_key, version, corr, body):
    client = b"minisentry-services"
    hdr = struct.pack(">hhih", api_key, version, corr, len(client)) + client
    msg = hdr + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", recv(sock, 4))[0]
    data = recv(sock, size)
    assert struct.unpack(">i", data[:4])[0] == corr
    return data[4:]

def recv(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf

with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3) as s:
    r = call(s, 18, 0, 1, b"")  # ApiVersions v0
    err, n = struct.unpack(">hi", r[:6])
    assert err == 0
    ranges = {}
    for i in range(n):
        k, lo, hi = struct.unpack(">hhh", r[6 + 6 * i: 12 + 6 * i])
        ranges[k] = (lo, hi)
    lo, hi = ranges[3]
    v = min(hi, 8)
    assert 1 <= v and v >= lo
    body = struct.pack(">i", -1)  # all topics
    if v >= 4:
        body += b"\x00"  # allow_auto_topic_creation
    if v >= 8:
        body += b"\x00\x00"  # include cluster / topic authorized operations
    r = call(s, 3, v, 2, body)
    off = 4 if v >= 3 else 0  # throttle_time_ms
    brokers = struct.unpack(">i", r[off:off + 4])[0]
    sys.exit(0 if brokers >= 1 else 1)
EOF
    fi
}

# wait_ready PIDFILE PATTERN CHECK...: poll CHECK until it succeeds (0), the process exits (1),
# or TIMEOUT seconds pass (2).
wait_ready() {
    local pidfile=$1 pattern=$2
    shift 2
    local deadline=$((SECONDS + TIMEOUT))
    while :; do
        if "$@"; then
            return 0
        fi
        pid_alive "$pidfile" "$pattern" || return 1
        ((SECONDS < deadline)) || return 2
        sleep 0.3
    done
}

# launch_failed NAME RC PIDFILE PATTERN LOG...: after wait_ready failed. A process that exited on a
# port taken since we picked it returns 0 (the caller retries on new ports); otherwise the
# process is stopped, its logs shown, and the script dies naming the service.
launch_failed() {
    local name=$1 rc=$2 pidfile=$3 pattern=$4
    shift 4
    if ((rc == 1)) && grep -qsE 'Address already in use|BindException' "$@"; then
        log "$name: a picked port was taken meanwhile; retrying on new ports"
        return 0
    fi
    stop_pidfile "$name" "$pidfile" "$pattern" || true
    tail_log "$@"
    if ((rc == 1)); then
        die "$name exited before becoming ready (logs: $*)"
    fi
    die "$name not ready after ${TIMEOUT}s (logs: $*)"
}

# spawn PIDFILE LOG CMD...: run CMD in the background in its own session (a Ctrl-C in the caller's
# terminal doesn't reach it), stdin closed, output appended to LOG (no pipe of the caller is held
# open), the start/stop lock fd 9 closed (or the daemon would hold the lock for its whole life).
# The child writes its own pid before exec, so PIDFILE is right even if setsid has to fork.
spawn() {
    local pidfile=$1 logf=$2 i
    shift 2
    rm -f "$pidfile"
    # shellcheck disable=SC2016  # expanded by the child bash
    setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidfile" "$@" \
        </dev/null >>"$logf" 2>&1 9>&- &
    for ((i = 0; i < 100; i++)); do
        [[ -s $pidfile ]] && return 0
        sleep 0.05
    done
    die "could not start $1 (no pidfile $pidfile)"
}

stop_pidfile() { # NAME PIDFILE PATTERN
    local name=$1 pidfile=$2 pattern=$3 pid i
    if ! pid_alive "$pidfile" "$pattern"; then
        rm -f "$pidfile"
        return 0
    fi
    pid=$(<"$pidfile")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do # up to 30 s for a clean shutdown
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not exit after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    kill -0 "$pid" 2>/dev/null && die "$name (pid $pid) is still running"
    rm -f "$pidfile"
}

# ---------------------------------------------------------------- redis

ensure_redis_installed() {
    if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "redis-server not on PATH and no apt-get to install it"
    log "installing redis-server with apt-get"
    local sudo=()
    if [[ $(id -u) != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "redis-server missing and not root (no sudo)"
        sudo=(sudo)
    fi
    # Keep the package's own service (port 6379) from being started by the install: only our
    # instance on a free loopback port may run. Add a deny-all policy-rc.d unless one exists.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        added_policy=1
    fi
    local rc=0
    {
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends redis-server
    } >"$STATE/apt.log" 2>&1 9>&- || rc=$?
    if ((added_policy)); then "${sudo[@]}" rm -f "$policy"; fi
    if ((rc != 0)); then
        tail_log "$STATE/apt.log"
        die "apt-get install redis-server failed"
    fi
    command -v redis-server >/dev/null 2>&1 || die "redis-server still not on PATH after install"
}

start_redis() {
    local dir="$STATE/redis" pidfile="$STATE/redis/redis.pid"
    mkdir -p "$dir"
    if pid_alive "$pidfile" redis-server && [[ -s $dir/port ]] && redis_ping "$(<"$dir/port")"; then
        log "reusing redis on 127.0.0.1:$(<"$dir/port")"
        return 0
    fi
    stop_pidfile redis "$pidfile" redis-server
    local port rc
    for _ in 1 2 3; do
        port=$(free_ports 1)
        rm -f "$dir/redis.log" "$dir/port"
        log "starting redis on 127.0.0.1:$port"
        # Backgrounded (not --daemonize): our pidfile is its pid and an early exit shows at once.
        spawn "$pidfile" "$dir/redis.log" redis-server --bind 127.0.0.1 --port "$port" \
            --protected-mode yes --save '' --appendonly no --dir "$dir" --daemonize no
        rc=0
        wait_ready "$pidfile" redis-server redis_ping "$port" || rc=$?
        if ((rc == 0)); then
            echo "$port" >"$dir/port"
            log "redis ready on 127.0.0.1:$port"
            return 0
        fi
        launch_failed redis "$rc" "$pidfile" redis-server "$dir/redis.log"
    done
    die "redis could not get a free port in 3 attempts"
}

# ---------------------------------------------------------------- kafka

ensure_kafka_libs() {
    if [[ -f $KAFKA_LIBS/.complete ]]; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not on PATH (needed to resolve Kafka $KAFKA_VERSION)"
    log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION with mvn into $KAFKA_LIBS"
    local work="$KAFKA_HOME/resolve"
    rm -rf "$work" "$KAFKA_LIBS.tmp"
    mkdir -p "$work"
    cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>minisentry</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
      <scope>runtime</scope>
    </dependency>
  </dependencies>
</project>
EOF
    if ! (cd "$work" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$KAFKA_LIBS.tmp") >"$work/mvn.log" 2>&1; then
        tail_log "$work/mvn.log"
        die "mvn could not resolve Kafka $KAFKA_VERSION"
    fi
    local jar="$KAFKA_LIBS.tmp/kafka_2.13-$KAFKA_VERSION.jar"
    [[ -f $jar ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing after resolution"
    local cls
    for cls in kafka/Kafka.class kafka/tools/StorageTool.class; do
        unzip -l "$jar" "$cls" >/dev/null 2>&1 || python3 -c '
import sys, zipfile
sys.exit(0 if sys.argv[2] in zipfile.ZipFile(sys.argv[1]).namelist() else 1)' "$jar" "$cls" ||
            die "$cls not found in $jar"
    done
    rm -rf "$KAFKA_LIBS"
    mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
    touch "$KAFKA_LIBS/.complete"
    log "kafka jars cached in $KAFKA_LIBS ($(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars)"
}

start_kafka() {
    local dir="$STATE/kafka" pidfile="$STATE/kafka/kafka.pid"
    mkdir -p "$dir"
    if pid_alive "$pidfile" kafka.Kafka && [[ -s $dir/port ]] && kafka_ready "$(<"$dir/port")"; then
        log "reusing kafka on 127.0.0.1:$(<"$dir/port")"
        return 0
    fi
    stop_pidfile kafka "$pidfile" kafka.Kafka
    command -v java >/dev/null 2>&1 || die "java not on PATH (Kafka needs Java 17+)"
    ensure_kafka_libs

    local rc
    for _ in 1 2 3; do
        rc=0
        launch_kafka "$dir" "$pidfile" || rc=$?
        if ((rc == 0)); then
            log "kafka ready on 127.0.0.1:$(<"$dir/port")"
            return 0
        fi
        launch_failed kafka "$rc" "$pidfile" kafka.Kafka "$dir/kafka.log" "$dir/logs/server.log"
    done
    die "kafka could not get free ports in 3 attempts"
}

# launch_kafka DIR PIDFILE: fresh storage on new free ports, start the broker, wait_ready's status.
launch_kafka() {
    local dir=$1 pidfile=$2
    local ports port cport
    ports=$(free_ports 2)
    port=$(sed -n 1p <<<"$ports")
    cport=$(sed -n 2p <<<"$ports")
    rm -rf "$dir/data" "$dir/logs" "$dir/kafka.log" "$dir/port"
    mkdir -p "$dir/data" "$dir/logs"

    cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
EOF
    cat >"$dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $dir/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
    local cp="$KAFKA_LIBS/*"
    local jvm=(-Dlog4j2.configurationFile="$dir/log4j2.properties" -Djava.awt.headless=true
        -Dkafka.logs.dir="$dir/logs")
    # Cluster id as `StorageTool random-uuid` makes it (16 random bytes, base64url, no padding,
    # never starting with "-"), without paying for a JVM start.
    local cluster_id
    cluster_id=$(python3 -c '
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    if not s.startswith("-"):
        print(s)
        break')
    if ! java "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$cluster_id" \
        -c "$dir/server.properties" >>"$dir/kafka.log" 2>&1; then
        tail_log "$dir/kafka.log"
        die "kafka storage format failed"
    fi
    echo "$port" >"$dir/port"
    log "starting kafka $KAFKA_VERSION on 127.0.0.1:$port (controller 127.0.0.1:$cport)"
    spawn "$pidfile" "$dir/kafka.log" java -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC \
        -XX:MaxGCPauseMillis=20 "${jvm[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties"
    wait_ready "$pidfile" kafka.Kafka kafka_ready "$port"
}

# ---------------------------------------------------------------- commands

env_lines() {
    [[ -s $STATE/redis/port && -s $STATE/kafka/port ]] || return 1
    printf 'export MINISENTRY_TEST_REDIS_URL=redis://127.0.0.1:%s/0\n' "$(<"$STATE/redis/port")"
    printf 'export MINISENTRY_TEST_KAFKA_BOOTSTRAP=127.0.0.1:%s\n' "$(<"$STATE/kafka/port")"
}

healthy() {
    pid_alive "$STATE/redis/redis.pid" redis-server && [[ -s $STATE/redis/port ]] &&
        redis_ping "$(<"$STATE/redis/port")" &&
        pid_alive "$STATE/kafka/kafka.pid" kafka.Kafka && [[ -s $STATE/kafka/port ]] &&
        kafka_ready "$(<"$STATE/kafka/port")"
}

with_lock() {
    mkdir -p "$STATE"
    exec 9>"$STATE/lock"
    if command -v flock >/dev/null 2>&1; then
        flock -w 600 9 || die "could not lock $STATE/lock"
    fi
}

cmd_start() {
    with_lock
    local t0=$SECONDS
    ensure_redis_installed
    start_redis
    start_kafka
    env_lines >"$STATE/env.tmp"
    mv "$STATE/env.tmp" "$STATE/env"
    log "services ready in $((SECONDS - t0))s; env in $STATE/env:"
    sed 's/^/[services]   /' "$STATE/env" >&2
}

cmd_stop() {
    with_lock
    rm -f "$STATE/env"
    stop_pidfile kafka "$STATE/kafka/kafka.pid" kafka.Kafka
    stop_pidfile redis "$STATE/redis/redis.pid" redis-server
    log "stopped"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
env)
    healthy || die "services are not running; run scripts/services.sh start"
    env_lines
    ;;
status)
    if healthy; then
        env_lines
    else
        echo "not running" >&2
        exit 1
    fi
    ;;
*)
    echo "usage: $0 start|stop|env|status" >&2
    exit 2
    ;;
esac
