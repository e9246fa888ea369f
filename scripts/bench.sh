#!/usr/bin/env bash
# make bench: requests/s of a product page through the dist tier, next to
# plain nginx serving the same bytes as a static file, measured one after
# the other on this machine with wrk. Starts its own topology on the default
# ports (stop `make run` first) in a temp dir and stops it at the end.
#
# Rows: the dist tier → app node over 1,000 ids (none of them hot: one id
# hammered alone would turn hot and be answered by the dist itself); one
# app node's L1 hit; a hot id (pinned on the hot service) answered by the
# dist tier from its own copy; nginx serving each page's bytes as a static
# file.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
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

export DETAILPAGE_ADMIN_TOKEN=${DETAILPAGE_ADMIN_TOKEN:-bench-$RANDOM$RANDOM}
HOT_ADDR=${BENCH_HOT_ADDR:-127.0.0.1:9104}
HOT_ID=2

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

# The dist → app row asks for ids 101..1100 in turn: each gets ~1/1000 of
# the load, far below the hot rule's floor.
cat > "$work/ids.lua" <<'LUA'
local n = 0
request = function()
    n = n % 1000 + 1
    return wrk.format("GET", "/item/" .. (n + 100) .. ".html")
end
LUA

# run_wrk URL [SCRIPT]: prints "rps p50 p99" of one wrk run.
run_wrk() {
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency ${2:+-s "$2"} "$1" > "$work/wrk.out"
    if grep -q "Non-2xx" "$work/wrk.out"; then
        echo "bench: non-2xx answers from $1" >&2
        cat "$work/wrk.out" >&2
        exit 1
    fi
    echo "$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out") $(awk '$1=="50%" {print $2}' "$work/wrk.out") $(awk '$1=="99%" {print $2}' "$work/wrk.out")"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# The same bytes from the page path and from a static file, in alternating
# rounds (this machine's speed drifts between runs); medians reported.
app_url=http://127.0.0.1:8081/item/1.html
curl -sf "$app_url" -o "$work/static/item/1.html"
for _ in 1 2 3 4 5 6; do curl -s "$app_url" -o /dev/null; curl -s "$url" -o /dev/null; done   # every worker's L1
wrk -t"$THREADS" -c16 -d3s -s "$work/ids.lua" http://127.0.0.1:8080/ > /dev/null   # app nodes' L1 for the dist → app row

# The hot id: pinned on the hot service, answered by the dist tier from its
# own copy (X-Served-By: dist, X-Cache: hot) once the dist has learnt it.
hot_url=http://127.0.0.1:8080/item/$HOT_ID.html
curl -sf -X POST -H "Authorization: Bearer $DETAILPAGE_ADMIN_TOKEN" -H 'Content-Type: application/json' \
    -d "{\"id\":$HOT_ID,\"action\":\"pin\"}" "http://$HOT_ADDR/_admin/hot" -o /dev/null \
    || { echo "bench: cannot pin id $HOT_ID on the hot service at $HOT_ADDR" >&2; exit 1; }
for _ in $(seq 1 50); do curl -sI "$hot_url" | grep -qi '^X-Cache: hot' && break; sleep 0.1; done
curl -sI "$hot_url" | grep -qi '^X-Cache: hot' || { echo "bench: id $HOT_ID is not served by the dist tier" >&2; exit 1; }
curl -sf "$hot_url" -o "$work/static/item/$HOT_ID.html"

declare -A rps p50 p99
names=("dist → app, 1,000 ids (none hot)" "app node, L1 hit" "nginx static file (same bytes)"
    "dist, hot id (dist copy)" "nginx static file (hot page bytes)")
urls=("http://127.0.0.1:8080/" "$app_url" "http://127.0.0.1:$STATIC_PORT/item/1.html"
    "$hot_url" "http://127.0.0.1:$STATIC_PORT/item/$HOT_ID.html")
scripts=("$work/ids.lua" "" "" "" "")
echo
echo "bench: wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS rounds, page of $bytes bytes, $(nproc) cores"
for round in $(seq 1 "$ROUNDS"); do
    for i in 0 1 2 3 4; do
        read -r r a b < <(run_wrk "${urls[$i]}" "${scripts[$i]}")
        rps[$i]+="$r "; p50[$i]+="$a "; p99[$i]+="$b "
    done
    echo "  round $round done"
done
for i in 0 1 2 3 4; do
    printf "%-36s %10s req/s (median; runs: %s)  p50 %s  p99 %s\n" "${names[$i]}" \
        "$(tr ' ' '\n' <<<"${rps[$i]}" | grep . | median)" "${rps[$i]}" "${p50[$i]}" "${p99[$i]}"
done
l1=$(tr ' ' '\n' <<<"${rps[1]}" | grep . | median)
st=$(tr ' ' '\n' <<<"${rps[2]}" | grep . | median)
awk -v a="$l1" -v b="$st" 'BEGIN {printf "L1 hit / static file: %.2fx\n", a/b}'
hot=$(tr ' ' '\n' <<<"${rps[3]}" | grep . | median)
hst=$(tr ' ' '\n' <<<"${rps[4]}" | grep . | median)
awk -v a="$hot" -v b="$hst" 'BEGIN {printf "hot id through the dist tier / static file: %.2fx (target 0.9x)\n", a/b}'
