#!/usr/bin/env bash
# make bench: requests/s of a product page through the dist tier, next to
# plain nginx serving the same bytes as a static file, measured one after
# the other on this machine with wrk. Starts its own topology on the default
# ports (stop `make run` first) in a temp dir and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-10s}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
STATIC_PORT=${BENCH_STATIC_PORT:-8090}
BIN=./bin/detailpage

for port in 8080 $STATIC_PORT; do
    if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
        echo "bench: port $port is in use (is 'make run' running?); stop it first" >&2
        exit 1
    fi
done

work=$(mktemp -d /tmp/detailpage-bench.XXXXXX)
up_pid=""
static_pid=""
cleanup() {
    [[ -n "$static_pid" ]] && kill "$static_pid" 2>/dev/null && wait "$static_pid" 2>/dev/null || true
    [[ -n "$up_pid" ]] && kill -TERM "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "bench: starting the topology in $work (first start seeds and warms the catalog)"
"$BIN" up --var "$work/var" > "$work/up.log" 2>&1 &
up_pid=$!
for _ in $(seq 1 600); do
    grep -q "detailpage is up" "$work/up.log" && break
    kill -0 "$up_pid" 2>/dev/null || { cat "$work/up.log"; exit 1; }
    sleep 0.5
done
grep -q "detailpage is up" "$work/up.log" || { echo "bench: topology did not come up" >&2; cat "$work/up.log"; exit 1; }

url=http://127.0.0.1:8080/item/1.html
mkdir -p "$work/static/item" "$work/static-nginx/logs" "$work/static-nginx/tmp"
curl -sf "$url" -o "$work/static/item/1.html"
bytes=$(wc -c < "$work/static/item/1.html")

cat > "$work/static-nginx/nginx.conf" <<CONF
worker_processes 2;
pid $work/static-nginx/nginx.pid;
error_log $work/static-nginx/logs/error.log warn;
$( [[ $(id -u) -eq 0 ]] && echo "user root;" )
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000;
    client_body_temp_path $work/static-nginx/tmp;
    proxy_temp_path $work/static-nginx/tmp;
    fastcgi_temp_path $work/static-nginx/tmp;
    uwsgi_temp_path $work/static-nginx/tmp;
    scgi_temp_path $work/static-nginx/tmp;
    server {
        listen 127.0.0.1:$STATIC_PORT reuseport;
        root $work/static;
        default_type text/html;
    }
}
CONF
nginx -p "$work/static-nginx" -c "$work/static-nginx/nginx.conf" -e "$work/static-nginx/logs/error.log" -g "daemon off;" &
static_pid=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$STATIC_PORT/item/1.html" -o /dev/null && break; sleep 0.1; done

run_wrk() {
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$1" > "$work/wrk.out"
    rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
    p50=$(awk '$1=="50%" {print $2}' "$work/wrk.out")
    p99=$(awk '$1=="99%" {print $2}' "$work/wrk.out")
    errs=$(awk '/Non-2xx|Socket errors/ {print}' "$work/wrk.out")
    printf "%-34s %10s req/s   p50 %8s   p99 %8s  %s\n" "$2" "$rps" "$p50" "$p99" "$errs"
}

echo
echo "bench: wrk -t$THREADS -c$CONNS -d$DURATION, page of $bytes bytes, $(nproc) cores"
curl -s "$url" -o /dev/null   # the page is in the app node's local cache
run_wrk "$url" "dist → app (Lua, local cache)"
run_wrk "http://127.0.0.1:$STATIC_PORT/item/1.html" "nginx static file (same bytes)"
