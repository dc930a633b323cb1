#!/usr/bin/env bash
# Vigil's local stack without Docker: Apache Kafka (KRaft, jars from Maven Central),
# PostgreSQL, Prometheus and Alertmanager (Debian packages), all on 127.0.0.1.
#
#   stack.sh up     [kafka|postgres|prometheus|alertmanager ...]   install what is missing, start
#   stack.sh down   [...]                                          stop what this script started
#   stack.sh status [...]
#
# Idempotent: `up` on a running stack changes nothing; `down` only stops servers it started
# (a PostgreSQL cluster that was already running is left alone).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# Servers keep their state apart from Vigil's own processes (VIGIL_HOME), so tests can share them.
state="${VIGIL_STACK_HOME:-$HOME/.cache/vigil}"
kafka_version="${VIGIL_KAFKA_VERSION:-4.1.1}"
kafka_port="${VIGIL_KAFKA_PORT:-9092}"
kafka_controller_port="${VIGIL_KAFKA_CONTROLLER_PORT:-9093}"
pg_port="${VIGIL_PG_PORT:-5432}"
pg_db="${VIGIL_PG_DB:-vigil}"
pg_user="${VIGIL_PG_USER:-vigil}"
pg_password="${VIGIL_PG_PASSWORD:-vigil}"
prom_port="${VIGIL_PROMETHEUS_PORT:-9090}"
am_port="${VIGIL_ALERTMANAGER_PORT:-9094}"

mkdir -p "$state/run" "$state/log"

say()  { printf '\033[1m[stack]\033[0m %s\n' "$*"; }
fail() { printf '\033[31m[stack] %s\033[0m\n' "$*" >&2; exit 1; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_port() {  # wait_port PORT NAME SECONDS LOG
  local i
  for ((i = 0; i < $3 * 4; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.25
  done
  [ -n "${4:-}" ] && tail -n 30 "$4" >&2
  fail "$2 did not open 127.0.0.1:$1 within $3 s"
}

stop_pid() {  # stop_pid PIDFILE NAME
  local pidfile=$1 name=$2 i
  if ! pid_alive "$pidfile"; then rm -f "$pidfile"; say "$name: not running"; return; fi
  local pid; pid=$(cat "$pidfile")
  kill "$pid"
  for ((i = 0; i < 120; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$pidfile"
  say "$name: stopped"
}

apt_install() {  # apt_install PACKAGE... (only the missing ones)
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# --- Kafka -----------------------------------------------------------------------------------
kafka_libs="$state/kafka-$kafka_version/libs"
kafka_pid="$state/run/kafka.pid"
kafka_log="$state/log/kafka.log"

kafka_fetch() {
  [ -f "$kafka_libs/.complete" ] && return 0
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  say "kafka: fetching org.apache.kafka:kafka_2.13:$kafka_version and its runtime classpath from Maven Central"
  rm -rf "$kafka_libs"
  mvn -q -f "$here/kafka-pom.xml" -Dkafka.version="$kafka_version" \
    dependency:copy-dependencies -DoutputDirectory="$kafka_libs" -DincludeScope=runtime \
    || fail "kafka: Maven could not resolve kafka_2.13:$kafka_version"
  touch "$kafka_libs/.complete"
}

kafka_up() {
  if pid_alive "$kafka_pid"; then say "kafka: already running (pid $(cat "$kafka_pid"))"; return; fi
  kafka_fetch
  local data="$state/kafka-data" conf="$state/kafka-server.properties"
  sed -e "s#@DATA@#$data#" -e "s#@PORT@#$kafka_port#" -e "s#@CONTROLLER_PORT@#$kafka_controller_port#" \
    "$here/kafka-server.properties" > "$conf"
  local java=(java -Xms128m -Xmx384m -XX:+UseG1GC
    "-Dlog4j2.configurationFile=$here/kafka-log4j2.properties" "-Dkafka.logs.dir=$state/log"
    -cp "$kafka_libs/*")
  if [ ! -f "$data/meta.properties" ]; then
    say "kafka: formatting KRaft storage in $data"
    local cluster_id; cluster_id=$("${java[@]}" kafka.tools.StorageTool random-uuid)
    "${java[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$conf" >>"$kafka_log" 2>&1 \
      || { tail -n 20 "$kafka_log" >&2; fail "kafka: storage format failed"; }
  fi
  say "kafka: starting $kafka_version (KRaft, 127.0.0.1:$kafka_port, heap 384 MiB)"
  setsid nohup "${java[@]}" kafka.Kafka "$conf" >>"$kafka_log" 2>&1 < /dev/null &
  echo $! > "$kafka_pid"
  wait_port "$kafka_port" kafka 90 "$kafka_log"
  say "kafka: ready"
}

kafka_down() { stop_pid "$kafka_pid" kafka; }
kafka_status() {
  if pid_alive "$kafka_pid"; then echo "kafka        up    127.0.0.1:$kafka_port (pid $(cat "$kafka_pid"))"
  else echo "kafka        down"; fi
}

# --- PostgreSQL -------------------------------------------------------------------------------
pg_marker="$state/run/postgres.started-by-vigil"

pg_cluster() {  # prints "VERSION NAME STATUS" of the cluster on our port
  pg_lsclusters --no-header 2>/dev/null | awk -v p="$pg_port" '$3 == p {print $1, $2, $4; exit}'
}

postgres_up() {
  command -v pg_lsclusters >/dev/null || apt_install postgresql
  dpkg -s postgresql >/dev/null 2>&1 || apt_install postgresql
  local cluster; cluster=$(pg_cluster)
  if [ -z "$cluster" ]; then
    local version; version=$(ls /usr/lib/postgresql | sort -n | tail -1)
    say "postgres: creating cluster $version/vigil on port $pg_port"
    pg_createcluster "$version" vigil -p "$pg_port" >/dev/null
    cluster=$(pg_cluster)
  fi
  read -r version name status <<<"$cluster"
  if [ "$status" != "online" ]; then
    say "postgres: starting cluster $version/$name on 127.0.0.1:$pg_port"
    pg_ctlcluster "$version" "$name" start
    touch "$pg_marker"
  else
    say "postgres: cluster $version/$name already online"
  fi
  wait_port "$pg_port" postgres 30
  local psql=(runuser -u postgres -- psql -p "$pg_port" -v ON_ERROR_STOP=1 -qtA)
  [ "$(id -u)" -ne 0 ] && psql=(sudo -u postgres psql -p "$pg_port" -v ON_ERROR_STOP=1 -qtA)
  if [ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$pg_user'")" ]; then
    say "postgres: creating role $pg_user"
    "${psql[@]}" -c "CREATE ROLE $pg_user LOGIN PASSWORD '$pg_password'"
  fi
  for db in $pg_db ${VIGIL_PG_EXTRA_DBS:-}; do
    if [ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
      say "postgres: creating database $db"
      "${psql[@]}" -c "CREATE DATABASE $db OWNER $pg_user"
    fi
  done
  say "postgres: ready"
}

postgres_down() {
  local cluster; cluster=$(pg_cluster)
  if [ -f "$pg_marker" ] && [ -n "$cluster" ]; then
    read -r version name _ <<<"$cluster"
    pg_ctlcluster "$version" "$name" stop || true
    rm -f "$pg_marker"
    say "postgres: stopped"
  else
    say "postgres: left as it was (not started by this script)"
  fi
}

postgres_status() {
  local cluster; cluster=$(pg_cluster)
  if [ -n "$cluster" ]; then echo "postgres     $(awk '{print $3}' <<<"$cluster")  127.0.0.1:$pg_port"
  else echo "postgres     absent"; fi
}

# --- Prometheus and Alertmanager ---------------------------------------------------------------
prom_pid="$state/run/prometheus.pid"
am_pid="$state/run/alertmanager.pid"

prometheus_up() {
  if pid_alive "$prom_pid"; then say "prometheus: already running"; return; fi
  command -v prometheus >/dev/null || apt_install prometheus
  mkdir -p "$state/prometheus-data"
  say "prometheus: starting on 127.0.0.1:$prom_port"
  setsid nohup prometheus --config.file="$repo/deploy/prometheus/prometheus.local.yml" \
    --storage.tsdb.path="$state/prometheus-data" --web.listen-address="127.0.0.1:$prom_port" \
    --web.enable-lifecycle >>"$state/log/prometheus.log" 2>&1 < /dev/null &
  echo $! > "$prom_pid"
  wait_port "$prom_port" prometheus 30 "$state/log/prometheus.log"
}
prometheus_down() { stop_pid "$prom_pid" prometheus; }
prometheus_status() {
  if pid_alive "$prom_pid"; then echo "prometheus   up    127.0.0.1:$prom_port"; else echo "prometheus   down"; fi
}

alertmanager_up() {
  if pid_alive "$am_pid"; then say "alertmanager: already running"; return; fi
  command -v prometheus-alertmanager >/dev/null || apt_install prometheus-alertmanager
  mkdir -p "$state/alertmanager-data"
  say "alertmanager: starting on 127.0.0.1:$am_port"
  setsid nohup prometheus-alertmanager --config.file="$repo/deploy/alertmanager/alertmanager.yml" \
    --storage.path="$state/alertmanager-data" --web.listen-address="127.0.0.1:$am_port" \
    --cluster.listen-address="" >>"$state/log/alertmanager.log" 2>&1 < /dev/null &
  echo $! > "$am_pid"
  wait_port "$am_port" alertmanager 30 "$state/log/alertmanager.log"
}
alertmanager_down() { stop_pid "$am_pid" alertmanager; }
alertmanager_status() {
  if pid_alive "$am_pid"; then echo "alertmanager up    127.0.0.1:$am_port"; else echo "alertmanager down"; fi
}

# --- main ----------------------------------------------------------------------------------------
action="${1:-}"; shift || true
parts=("$@"); [ ${#parts[@]} -eq 0 ] && parts=(kafka postgres prometheus alertmanager)
case "$action" in
  up)     for p in "${parts[@]}"; do "${p}_up"; done ;;
  down)   for ((i = ${#parts[@]} - 1; i >= 0; i--)); do "${parts[$i]}_down"; done ;;
  status) for p in "${parts[@]}"; do "${p}_status"; done ;;
  *) fail "usage: stack.sh up|down|status [kafka|postgres|prometheus|alertmanager ...]" ;;
esac
