#!/usr/bin/env bash
# Load benchmark: repogate's authorized proxying against nginx's plain
# proxy_pass, same upstream, same machine, same run, alternating rounds.
#
#   benches/load.sh                 # throughput: A B A B A B rounds of wrk
#   MODE=rate benches/load.sh       # latency at a fixed rate (half of nginx's max)
#   MODE=flood benches/load.sh      # valid traffic during invalid-token and login floods
#   MODE=profile benches/load.sh    # where repogate's CPU goes under load (perf)
#   MODE=floor benches/load.sh      # nginx against a bare hyper proxy that checks nothing
#
# Knobs: ROUNDS (3), DURATION (10s), CONNS (64), WRK_THREADS (1), RATE (auto),
# WORKERS (repogate's [server] workers; 0 = one per CPU), FLOOD_RATE (5000 unknown-token req/s).
# Needs nginx and wrk (installed with apt-get when missing), and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${MODE:-throughput}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-1}
UP_PORT=18080 NGINX_PORT=18081 GATE_PORT=18082 BARE_PORT=18083 SINK_PORT=18084 ADMIN_PORT=18092
PATH_Q="/api/v4/projects/acme%2Fwidgets/issues"

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need nginx nginx-light
need wrk wrk

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    nginx -p "$work/up" -c nginx.conf -s stop 2>/dev/null || true
    nginx -p "$work/px" -c nginx.conf -s stop 2>/dev/null || true
    nginx -p "$work/sink" -c nginx.conf -s stop 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet
cargo build --release --quiet --example fixed_rate --example bare_proxy
bin=target/release/repogate

# One nginx worker in $1 on port $2 answering `return $3` from memory.
static_nginx() {
    mkdir -p "$work/$1/logs"
    cat > "$work/$1/nginx.conf" <<CONF
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$2; location / { return $3; } }
}
CONF
}
# The upstream answers 200. The flood control (a sink) shows what a flood
# costs the machine when it hits something that refuses it almost for free.
static_nginx up "$UP_PORT" '200 "ok\n"'
static_nginx sink "$SINK_PORT" 401
mkdir -p "$work/px/logs"
# The baseline: nginx proxy_pass with upstream keepalive, two workers, no access log.
cat > "$work/px/nginx.conf" <<CONF
worker_processes 2;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    upstream up { server 127.0.0.1:$UP_PORT; keepalive 128; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
nginx -p "$work/up" -c nginx.conf
nginx -p "$work/px" -c nginx.conf
nginx -p "$work/sink" -c nginx.conf

# repogate: same upstream, a registered repository, an enterprise token.
hash=$(printf 'bench-password\n' | $bin hash-password)
cat > "$work/gate.toml" <<CONF
[server]
listen = "127.0.0.1:$GATE_PORT"
workers = ${WORKERS:-0}
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
login_concurrency = 1
[[admin.users]]
name = "bench"
password_hash = "$hash"
[store]
path = "store"
[account]
plan = "enterprise"
[log]
level = "warn"
access_log = false
[[upstreams]]
name = "up"
url = "http://127.0.0.1:$UP_PORT"
headers = { "PRIVATE-TOKEN" = "upstream-credential" }
[[routes]]
prefix = "/"
upstream = "up"
preset = "gitlab"
[[repositories]]
name = "acme/widgets"
CONF
$bin serve --config "$work/gate.toml" 2>"$work/gate.log" &
pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null && break; sleep 0.1; done
export REPOGATE_ADMIN_URL="http://127.0.0.1:$ADMIN_PORT" REPOGATE_ADMIN_USER=bench REPOGATE_ADMIN_PASSWORD=bench-password
token=$($bin token create -d bench --grant acme/widgets=developer --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

gate_url="http://127.0.0.1:$GATE_PORT$PATH_Q"
nginx_url="http://127.0.0.1:$NGINX_PORT$PATH_Q"
for url in "$gate_url" "$nginx_url"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "PRIVATE-TOKEN: $token" "$url")
    [ "$code" = 200 ] || { echo "warm-up request to $url answered $code" >&2; exit 1; }
done

# One wrk run; prints "rps p50_ms p99_ms non2xx".
run_wrk() {
    wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" --latency -H "PRIVATE-TOKEN: $token" "$1" | python3 benches/wrk_summary.py
}

median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

# A B rounds of wrk: nginx, then the target named $1 at URL $2.
throughput() {
    local name=${1:-repogate} url=${2:-$gate_url}
    echo "# throughput: $ROUNDS rounds x $DURATION, wrk -t$WRK_THREADS -c$CONNS, authorized GET $PATH_Q"
    echo "# round target   req/s  p50_ms  p99_ms  non2xx"
    ratios=()
    for r in $(seq "$ROUNDS"); do
        read -r n_rps n_p50 n_p99 n_bad n_rest <<<"$(run_wrk "$nginx_url")"
        echo "  $r     nginx    $n_rps  $n_p50  $n_p99  $n_bad $n_rest"
        read -r g_rps g_p50 g_p99 g_bad g_rest <<<"$(run_wrk "$url")"
        echo "  $r     $name $g_rps  $g_p50  $g_p99  $g_bad $g_rest"
        ratios+=("$(python3 -c "print($g_rps / $n_rps)")")
    done
    echo "median throughput ratio $name/nginx: $(median "${ratios[@]}")"
}

# The same rounds against a hyper proxy that checks nothing (examples/bare_proxy.rs).
floor() {
    target/release/examples/bare_proxy "127.0.0.1:$BARE_PORT" "127.0.0.1:$UP_PORT" "$(nproc)" &
    pids+=($!)
    sleep 0.5
    throughput bare "http://127.0.0.1:$BARE_PORT$PATH_Q"
}

fixed_rate() {
    local rate=${RATE:-}
    if [ -z "$rate" ]; then
        read -r max _ <<<"$(run_wrk "$nginx_url")"
        rate=$((max / 2))
    fi
    echo "# fixed rate: $rate req/s for $DURATION, latency from each request's scheduled send time"
    for r in $(seq "$ROUNDS"); do
        echo "  $r nginx    $(target/release/examples/fixed_rate --url "$nginx_url" --rate "$rate" --duration "$DURATION" --header "PRIVATE-TOKEN: $token")"
        echo "  $r repogate $(target/release/examples/fixed_rate --url "$gate_url" --rate "$rate" --duration "$DURATION" --header "PRIVATE-TOKEN: $token")"
    done
}

# Valid traffic alone and beside floods. The flood generator runs on the
# same two cores, so the same flood is also aimed at a sink that refuses it
# almost for free: the drop there is the generator's own cost to the machine,
# and the rest of the drop beside the real flood is repogate's.
flood() {
    local rate=${FLOOD_RATE:-5000} alone=() by_token=() by_sink=() by_login=()
    echo "# valid traffic alone; beside $rate req/s of unknown-id tokens (at repogate, then at a sink); beside 200 req/s of wrong-password logins; $ROUNDS rounds"
    # Runs wrk on repogate while fixed_rate sends to $1 with the rest of the arguments.
    beside() {
        local url=$1
        shift
        target/release/examples/fixed_rate --url "$url" --duration "$DURATION" "$@" >/dev/null &
        local flood_pid=$!
        read -r rps _ <<<"$(run_wrk "$gate_url")"
        wait "$flood_pid" || true
        echo "$rps"
    }
    for r in $(seq "$ROUNDS"); do
        read -r base _ <<<"$(run_wrk "$gate_url")"
        local t s l
        t=$(beside "$gate_url" --rate "$rate" --unknown-tokens)
        s=$(beside "http://127.0.0.1:$SINK_PORT$PATH_Q" --rate "$rate" --unknown-tokens)
        l=$(beside "http://127.0.0.1:$ADMIN_PORT/admin/v1/login" --rate 200 --method POST \
            --body '{"user":"bench","password":"wrong"}')
        echo "  $r alone $base  token flood $t  same flood at the sink $s  login flood $l req/s"
        alone+=("$base") by_token+=("$t") by_sink+=("$s") by_login+=("$l")
    done
    local a
    a=$(median "${alone[@]}")
    change() { python3 -c "print(f'{($1 - $a) / $a * 100:+.1f}%')"; }
    t=$(median "${by_token[@]}") s=$(median "${by_sink[@]}") l=$(median "${by_login[@]}")
    echo "medians: alone $a; token flood $t ($(change "$t")); same flood at the sink $s ($(change "$s")); login flood $l ($(change "$l"))"
}

# A CPU profile of repogate under wrk load (software clock; see BENCHMARKS.md).
profile() {
    need perf linux-perf
    perf record -e cpu-clock -F ${FREQ:-2000} --call-graph ${CALLGRAPH:-fp} -o "$work/perf.data" -p "${pids[0]}" -- sleep 8 >/dev/null 2>&1 &
    local perf_pid=$!
    run_wrk "$gate_url" >/dev/null
    wait "$perf_pid" || true
    [ -n "${PERF_KEEP:-}" ] && cp "$work/perf.data" "$PERF_KEEP"
    perf report -i "$work/perf.data" ${CHILDREN:---no-children} --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | sed -E 's/ +-? +-? *$//' | head -${TOP:-40}
}

case "$MODE" in
    throughput) throughput ;;
    floor) floor ;;
    profile) profile ;;
    hold)
        # Keep everything running for hands-on experiments until interrupted.
        echo "nginx $nginx_url  repogate $gate_url  pid ${pids[0]}  token $token"
        sleep infinity ;;
    rate) fixed_rate ;;
    flood) flood ;;
    *) echo "MODE must be throughput, floor, rate, flood, profile or hold" >&2; exit 2 ;;
esac
