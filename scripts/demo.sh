#!/usr/bin/env bash
# make demo: the whole pipeline on this machine, without Docker.
#
#   1. starts the local Kafka broker and Redis server (unless they already run),
#   2. creates the topics and trains a demo-sized model if the registry has none
#      (real data when ${NP_DATA_DIR:-../shared/data} has it, SYNTHETIC data otherwise;
#      NP_DEMO_TRAIN_ARGS overrides the size, default "--sessions 1200 --trees 40", 800
#      sessions for synthetic data),
#   3. mints an API token for this run (read scope; only its hash goes to the API), starts the
#      stream worker and the API (logs under var/log/, or NP_DEMO_LOG_DIR); with NP_API_AUTH=off
#      the API runs open instead (loopback only),
#   4. replays listening sessions at a modest rate (NP_DEMO_RATE events/s, default 60; the first
#      NP_DEMO_SESSIONS sessions, default 3000: about half an hour),
#   5. prints the live page's URL (with the token in its #token= fragment, which the browser
#      never sends to the server) and a terminal summary every few seconds.
#
# Ctrl-C (or SIGTERM) stops everything this script started, services included when it started
# them, and leaves no process behind. The run's Redis keys (prefix demo-<time>) are deleted then
# too, unless NP_DEMO_KEEP_KEYS is set.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
t0="$(date +%s.%N)"

py="$root/.venv/bin/python"
np="$root/.venv/bin/nowplaying"
if [[ ! -x "$np" ]]; then
    echo "error: $np not found; run 'make setup' first" >&2
    exit 1
fi

# The worker and the API talk to the services this script starts (NP_KAFKA_PORT / NP_REDIS_PORT
# move them, as for scripts/services.sh), unless the addresses are given outright.
export NP_KAFKA_BOOTSTRAP_SERVERS="${NP_KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${NP_KAFKA_PORT:-9092}}"
export NP_REDIS_URL="${NP_REDIS_URL:-redis://127.0.0.1:${NP_REDIS_PORT:-6380}/0}"

rate="${NP_DEMO_RATE:-60}"
api_host="${NP_API_HOST:-127.0.0.1}"
api_port="${NP_API_PORT:-8000}"
worker_port="${NP_WORKER_METRICS_PORT:-8001}"
model_dir="${NP_MODEL_DIR:-var/models}"
data_dir="${NP_DATA_DIR:-../shared/data}"
mssd="$data_dir/mssd-derived-sessions/mini-spotify-data.csv"
log_dir="${NP_DEMO_LOG_DIR:-var/log}"
mkdir -p "$log_dir"
# Each run keeps its sessions under its own Redis key prefix: the replay's event ids repeat from
# run to run, and the worker would rightly treat them as redeliveries of the last run's events.
run_prefix="${NP_REDIS_KEY_PREFIX:-demo-$(date -u +%Y%m%dT%H%M%S)}"
export NP_REDIS_KEY_PREFIX="$run_prefix"

say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }

children=()          # process-group leaders started here (worker, api, replay)
summary_pid=""
services_started=()  # services this script started (and so stops)
cleaned=0

stop_group() {  # stop_group PID NAME: SIGTERM its process group, SIGKILL after 15 s
    local pid="$1" name="$2"
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    say "$name did not stop in 15 s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    [[ $cleaned == 1 ]] && return
    cleaned=1
    # Finish the clean-up whatever happens to the terminal: a second Ctrl-C, a closed window or a
    # closed pipe (`make demo | tee log`, whose tee dies on Ctrl-C) must not cut it short.
    trap '' INT TERM HUP PIPE
    set +e
    echo
    say "stopping…"
    [[ -n "$summary_pid" ]] && stop_group "$summary_pid" summary
    # stop in reverse start order: replay, api, worker
    local i
    for ((i = ${#children[@]} - 1; i >= 0; i--)); do
        stop_group "${children[$i]%%:*}" "${children[$i]#*:}"
    done
    if [[ -z "${NP_DEMO_KEEP_KEYS:-}" && "$run_prefix" == demo-* ]]; then
        "$py" scripts/demo_summary.py --delete-prefix "$run_prefix" || true
    fi
    for service in "${services_started[@]}"; do
        scripts/services.sh down "$service" || true
    done
    say "stopped everything it started"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

start() {  # start NAME COMMAND...: in its own process group, output to var/log/NAME.log
    local name="$1"
    shift
    setsid "$@" >"$log_dir/$name.log" 2>&1 &
    children+=("$!:$name")
    say "started $name (pid $!, log $log_dir/$name.log)"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit="$1" what="$2"
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            say "error: $what not ready after ${limit}s"
            return 1
        fi
        for child in "${children[@]}"; do
            if ! kill -0 "${child%%:*}" 2>/dev/null; then
                say "error: ${child#*:} exited; last lines of $log_dir/${child#*:}.log:"
                tail -n 30 "$log_dir/${child#*:}.log" >&2 || true
                return 1
            fi
        done
        sleep 0.5
    done
}

# --- 1. services ----------------------------------------------------------------------------
for service in redis kafka; do
    if scripts/services.sh status "$service" >/dev/null 2>&1; then
        say "$service already running: leaving it running afterwards"
    else
        services_started+=("$service")
        scripts/services.sh up "$service"
    fi
done

# --- 2. topics and model --------------------------------------------------------------------
"$np" topics
data_args=()
if [[ -f "$mssd" ]]; then
    say "data: REAL listening sessions from $mssd"
else
    say "data: $mssd not found; using the SYNTHETIC session generator (clearly not real data)"
    data_args=(--synthetic)
fi
if [[ -s "$model_dir/latest" ]]; then
    say "model: $(cat "$model_dir/latest") in $model_dir"
else
    # A demo-sized model trains in about a minute; `nowplaying train` uses all the data.
    demo_size="--sessions 1200 --trees 40"
    [[ ${#data_args[@]} -gt 0 ]] && demo_size="--sessions 800 --trees 40"  # more rows each
    read -r -a train_args <<<"${NP_DEMO_TRAIN_ARGS:-$demo_size}"
    say "model: none in $model_dir; training a demo-sized one (${train_args[*]})"
    "$np" train "${data_args[@]}" "${train_args[@]}" --no-progress
fi

# --- 3 and 4. a token, then the worker, API and the replay, started together ----------------
# The API gets the token's hash only (added to any NP_API_TOKENS already set); the token itself
# goes to the summary (NP_DEMO_API_TOKEN) and into the page's URL below.
api_token=""
if [[ "${NP_API_AUTH:-on}" == "off" ]]; then
    say "API: NP_API_AUTH=off, serving it OPEN on $api_host (no token needed)"
else
    minted="$("$np" api token create --name "demo-$(date -u +%H%M%S)" --scopes read --json)"
    api_token="$("$py" -c 'import json, sys; print(json.load(sys.stdin)["token"])' <<<"$minted")"
    entry="$("$py" -c 'import json, sys; print(json.load(sys.stdin)["entry"])' <<<"$minted")"
    export NP_API_TOKENS="${NP_API_TOKENS:+$NP_API_TOKENS,}$entry"
    say "API: minted a read token for this run (the API holds only its hash)"
fi
# The worker's consumer group starts at the earliest offset, so nothing the replay produces
# while the worker is still starting is lost; the replay's data loading overlaps its start-up.
start worker "$np" worker
start api "$np" api
start replay "$np" replay "${data_args[@]}" --sessions "${NP_DEMO_SESSIONS:-3000}" \
    --rate "$rate" --no-progress
wait_for 120 "API" curl -fsS "http://$api_host:$api_port/readyz"
wait_for 120 "worker" curl -fsS "http://127.0.0.1:$worker_port/metrics"

# --- 5. page and summary --------------------------------------------------------------------
page_url="http://$api_host:$api_port/"
[[ -n "$api_token" ]] && page_url+="#token=$api_token"
cat <<EOF

  Live page:  $page_url
  API docs:   http://$api_host:$api_port/docs${api_token:+ (Authorize with the token after #token= above)}
  Metrics:    http://$api_host:$api_port/metrics (API), http://127.0.0.1:$worker_port/metrics (worker)
  Replaying sessions at $rate events/s (Redis key prefix $run_prefix). Ctrl-C stops everything.

EOF
NP_DEMO_API_TOKEN="$api_token" "$py" scripts/demo_summary.py --api "http://$api_host:$api_port" \
    --worker "http://127.0.0.1:$worker_port" --t0 "$t0" &
summary_pid=$!
# `wait` returns when a trapped signal arrives, so Ctrl-C is handled at once.
wait "$summary_pid"
