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
# file. Bytes per view (issue 15): the app node's L1 hit for a client that
# accepts gzip (the page compressed once, when rendered) next to nginx
# serving the same compressed bytes with gzip_static and compressing the
# plain page on the fly (gzip on, level 6: the app tier's level); a
# revalidation (If-None-Match with the page's ETag → 304) next to the full
# gzip hit, and nginx's own revalidation of its gzip_static file next to
# its full answer (the reference: what a 304 saves on this machine); the
# bytes on the wire of both, and the 304 next to the full gzip hit with the
# node's answers through a 1 Gbit/s class of an htb qdisc on lo (as root
# with tc): what a 304 saves where the link is the limit.
#
# Each figure with a target is recorded as a row of `make bench`'s closing
# table (tab-separated, what/figure/target/verdict, in the file named by
# $DETAILPAGE_BENCH_RESULTS; go/internal/benchrow writes the same format).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
STATIC_PORT=${BENCH_STATIC_PORT:-8090}
GZIP_LEVEL=6 # the app tier's (lua/detailpage/app.lua GZIP_LEVEL)
BIN=./bin/detailpage
RESULTS=${DETAILPAGE_BENCH_RESULTS:-}

# record WHAT FIGURE TARGET VERDICT: one row of the closing table (printed
# too; appended to $DETAILPAGE_BENCH_RESULTS when set). VERDICT: met,
# NOT MET, or - for a row without a target.
record() {
    if [[ -n "$3" ]]; then
        printf 'bench row: %s: %s (target %s: %s)\n' "$1" "$2" "$3" "$4"
    else
        printf 'bench row: %s: %s (no target)\n' "$1" "$2"
    fi
    if [[ -n "$RESULTS" ]]; then
        mkdir -p "$(dirname "$RESULTS")"
        printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$RESULTS"
    fi
}

# ratio_row WHAT A B MIN: records A/B as "1.23×" against the target "≥ MIN×".
ratio_row() {
    local r verdict
    r=$(awk -v a="$2" -v b="$3" 'BEGIN {printf "%.2f", a/b}')
    verdict=$(awk -v r="$r" -v m="$4" 'BEGIN {print (r >= m) ? "met" : "NOT MET"}')
    record "$1" "${r}×" "≥ $4×" "$verdict"
}

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
# started as root, `up` runs the nginx workers as www-data, which must
# reach their prefix under here (mktemp makes it 0700)
chmod 755 "$work"
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
        # the app node's own gzip bytes, precompressed (item/1.html.gz)
        location /gzip-static/ {
            alias $work/static/;
            gzip_static on;
            gzip_vary on;
        }
        # the plain page compressed on every request, at the app's level
        location /gzip-on/ {
            alias $work/static/;
            gzip on;
            gzip_comp_level $GZIP_LEVEL;
            gzip_vary on;
        }
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

# CPU per request: the answering nginx's workers (utime + stime from
# /proc, in clock ticks) and wrk's own (bash's time), over one run. Steadier
# than req/s on a machine others share; reported beside the req/s rows.
CLK_TCK=$(getconf CLK_TCK)
workers_of() { pgrep -P "$(cat "$1")" | tr '\n' ' '; }
ticks_of() {
    local t=0 w f
    for w in $1; do
        read -r -a f < "/proc/$w/stat" || continue
        t=$((t + f[13] + f[14]))
    done
    echo "$t"
}

# run_wrk PIDS URL [SCRIPT] [HEADER...]: prints "rps p50 p99 cpu" of one
# wrk run; cpu: µs of CPU per request, PIDS' (the server's workers) and wrk's.
run_wrk() {
    local pids=$1 url=$2 script=${3:-} hdrs=() t0 t1 n
    shift 3 || shift $#
    for h in "$@"; do hdrs+=(-H "$h"); done
    t0=$(ticks_of "$pids")
    { TIMEFORMAT='%3U %3S'; time wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency ${script:+-s "$script"} \
        "${hdrs[@]}" "$url" > "$work/wrk.out"; } 2> "$work/wrk.time"
    t1=$(ticks_of "$pids")
    if grep -q "Non-2xx" "$work/wrk.out"; then
        echo "bench: non-2xx answers from $url" >&2
        cat "$work/wrk.out" >&2
        exit 1
    fi
    n=$(awk '/requests in/ {print $1}' "$work/wrk.out")
    echo "$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out") $(awk '$1=="50%" {print $2}' "$work/wrk.out")" \
        "$(awk '$1=="99%" {print $2}' "$work/wrk.out")" \
        "$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$n" -v w="$(cat "$work/wrk.time")" \
            'BEGIN {split(w, c, " "); printf "%.2f", (t / hz + c[1] + c[2]) * 1e6 / n}')"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# The same bytes from the page path and from a static file, in alternating
# rounds (this machine's speed drifts between runs); medians reported.
app_port=8081 # app1
app_url=http://127.0.0.1:$app_port/item/1.html
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

# gzip: the app node's compressed copy of page 1 (raw bytes, curl does not
# inflate without --compressed) is what gzip_static serves; the on-the-fly
# nginx compresses the plain page. Each must answer gzip, and the
# revalidation row must answer 304.
GZ='Accept-Encoding: gzip'
curl -sf -H "$GZ" "$app_url" -o "$work/static/item/1.html.gz"
gzbytes=$(wc -c < "$work/static/item/1.html.gz")
gunzip -c "$work/static/item/1.html.gz" | cmp -s - "$work/static/item/1.html" \
    || { echo "bench: the app node's gzip copy does not inflate to its plain page" >&2; exit 1; }
etag=$(curl -sf -o /dev/null -D - -H "$GZ" "$app_url" | awk 'tolower($1)=="etag:" {sub(/\r$/, "", $2); print $2}')
[[ "$etag" == *-gz\" ]] || { echo "bench: no gzip ETag from the app node (got '$etag')" >&2; exit 1; }
INM="If-None-Match: $etag"
static_gz_url=http://127.0.0.1:$STATIC_PORT/gzip-static/item/1.html
fly_gz_url=http://127.0.0.1:$STATIC_PORT/gzip-on/item/1.html
for u in "$app_url" "$static_gz_url" "$fly_gz_url"; do
    curl -sf -o /dev/null -D - -H "$GZ" "$u" | grep -qi '^Content-Encoding: gzip' \
        || { echo "bench: $u does not answer gzip" >&2; exit 1; }
done
cmp -s <(curl -sf -H "$GZ" "$static_gz_url") "$work/static/item/1.html.gz" \
    || { echo "bench: gzip_static does not serve the app node's bytes" >&2; exit 1; }
fly_bytes=$(curl -sf -H "$GZ" "$fly_gz_url" | wc -c)
check_304() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "$GZ" -H "$INM" "$app_url")
    [[ "$code" == 304 ]] || { echo "bench: If-None-Match $etag answered $code, not 304 ($1)" >&2; exit 1; }
}
check_304 "before the runs"
# nginx's own revalidation of its gzip_static file (its ETag is the file's
# mtime and size): the reference for what a 304 can save over a full
# answer of these bytes on this machine.
static_etag=$(curl -sf -o /dev/null -D - -H "$GZ" "$static_gz_url" | awk 'tolower($1)=="etag:" {sub(/\r$/, "", $2); print $2}')
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$GZ" -H "If-None-Match: $static_etag" "$static_gz_url")
[[ -n "$static_etag" && "$code" == 304 ]] \
    || { echo "bench: nginx gzip_static did not revalidate (ETag '$static_etag' answered $code)" >&2; exit 1; }

declare -A rps p50 p99 cpu
dist_pids=$(workers_of "$work/var/dist/nginx.pid")
app_pids=$(workers_of "$work/var/app1/nginx.pid")
static_pids=$(workers_of "$work/static-nginx/nginx.pid")
pids=("$dist_pids" "$app_pids" "$static_pids" "$dist_pids" "$static_pids" "$app_pids" "$static_pids" "$static_pids"
    "$app_pids" "$static_pids")
names=("dist → app, 1,000 ids (none hot)" "app node, L1 hit" "nginx static file (same bytes)"
    "dist, hot id (dist copy)" "nginx static file (hot page bytes)"
    "app node, L1 hit, gzip" "nginx gzip_static (same gzip bytes)" "nginx gzip on, level $GZIP_LEVEL"
    "app node, L1, 304 (If-None-Match)" "nginx gzip_static, 304 (If-None-Match)")
urls=("http://127.0.0.1:8080/" "$app_url" "http://127.0.0.1:$STATIC_PORT/item/1.html"
    "$hot_url" "http://127.0.0.1:$STATIC_PORT/item/$HOT_ID.html"
    "$app_url" "$static_gz_url" "$fly_gz_url" "$app_url" "$static_gz_url")
scripts=("$work/ids.lua" "" "" "" "" "" "" "" "" "")
headers=("" "" "" "" "" "$GZ" "$GZ" "$GZ" "$GZ|$INM" "$GZ|If-None-Match: $static_etag")
n=${#names[@]}
echo
echo "bench: wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS rounds, page of $bytes bytes ($gzbytes gzip from the app," \
    "$fly_bytes from nginx gzip on), $(nproc) cores"
for round in $(seq 1 "$ROUNDS"); do
    for ((i = 0; i < n; i++)); do
        IFS='|' read -r -a hs <<<"${headers[$i]}"
        read -r r a b c < <(run_wrk "${pids[$i]}" "${urls[$i]}" "${scripts[$i]}" "${hs[@]}")
        rps[$i]+="$r "; p50[$i]+="$a "; p99[$i]+="$b "; cpu[$i]+="$c "
    done
    echo "  round $round done"
done
check_304 "after the runs"
med() { tr ' ' '\n' <<<"${rps[$1]}" | grep . | median; }
medcpu() { tr ' ' '\n' <<<"${cpu[$1]}" | grep . | median; }
for ((i = 0; i < n; i++)); do
    printf "%-40s %10s req/s (median; runs: %s)  p50 %s  p99 %s  CPU µs/req (server + wrk) %s\n" "${names[$i]}" \
        "$(med "$i")" "${rps[$i]}" "${p50[$i]}" "${p99[$i]}" "${cpu[$i]}"
done
echo "(the dist → app row's CPU is the dist's and wrk's only, not the app nodes')"
echo
commas() { awk -v x="$1" 'BEGIN {s = sprintf("%.0f", x); o = ""; while (length(s) > 3) {o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3)}; print s o}'; }
record "dist → app, 1,000 ids (none hot)" "$(commas "$(med 0)") req/s" "" "-"
record "L1 hit / nginx static file, same bytes (plain)" \
    "$(awk -v a="$(med 1)" -v b="$(med 2)" 'BEGIN {printf "%.2f", a/b}')×" "" "-"
ratio_row "hot id at the dist tier / nginx static file (bench.sh, default ports)" "$(med 3)" "$(med 4)" 0.9
ratio_row "L1 gzip hit / nginx gzip_static" "$(med 5)" "$(med 6)" 1.0
ratio_row "L1 gzip hit / nginx on-the-fly gzip" "$(med 5)" "$(med 7)" 3
ratio_row "304 revalidation / full gzip hit" "$(med 8)" "$(med 5)" 1.5
# No target: nginx's own ratio for the same bytes, the ceiling the row
# above is measured against.
record "nginx's own 304 / its gzip_static hit, same bytes (reference)" \
    "$(awk -v a="$(med 9)" -v b="$(med 6)" 'BEGIN {printf "%.2f", a/b}')×" "" "-"
# The same comparisons by CPU per request (no target: informative, steadier
# than req/s here): how many of the other's requests one costs.
cpu_row() {
    record "$1, by CPU per request (server + wrk)" \
        "$(awk -v a="$2" -v b="$3" 'BEGIN {printf "%.2f× (%.1f vs %.1f µs)", b/a, a, b}')" "" "-"
}
cpu_row "L1 hit / nginx static file, same bytes (plain)" "$(medcpu 1)" "$(medcpu 2)"
cpu_row "hot id at the dist tier / nginx static file" "$(medcpu 3)" "$(medcpu 4)"
cpu_row "L1 gzip hit / nginx gzip_static" "$(medcpu 5)" "$(medcpu 6)"
cpu_row "304 revalidation / full gzip hit" "$(medcpu 8)" "$(medcpu 5)"
cpu_row "nginx's own 304 / its gzip_static hit, same bytes (reference)" "$(medcpu 9)" "$(medcpu 6)"

# Bytes on the wire per view (status line, headers and body, as curl
# counts them): what a 304 saves where the link, not the CPU, is the limit.
wire() { curl -s -o /dev/null -w '%{size_header} %{size_download}' "$@" | awk '{print $1 + $2}'; }
full_wire=$(wire -H "$GZ" "$app_url")
inm_wire=$(wire -H "$GZ" -H "$INM" "$app_url")
record "304 revalidation / full gzip hit, bytes on the wire per view" \
    "$(awk -v a="$inm_wire" -v b="$full_wire" 'BEGIN {printf "%.3f× (%d vs %d bytes)", a/b, a, b}')" "" "-"

# The 304 row again with the link as the limit: the node's answers (from
# its port) leave through a 1 Gbit/s class of an htb qdisc on lo (as root,
# with tc; the qdisc is removed at the end). On loopback a 304 saves only
# the copy of the body (the rows above, for nginx as well); on a link that
# the page's bytes fill, it saves their time on the wire.
LINK_RATE=${BENCH_LINK_RATE:-1gbit}
if [[ $(id -u) -ne 0 ]] || ! command -v tc > /dev/null; then
    echo "bench: the link-bound 304 row needs root and tc (iproute2); left out"
elif lo_qdisc=$(tc qdisc show dev lo) && [[ "$lo_qdisc" != *noqueue* ]]; then
    echo "bench: lo already has a qdisc (${lo_qdisc%%$'\n'*}); the link-bound 304 row is left out"
else
    link_added=""
    link_cleanup() { [[ -z "$link_added" ]] || tc qdisc del dev lo root 2>/dev/null || true; link_added=""; }
    trap 'link_cleanup; cleanup' EXIT
    link_setup() {
        tc qdisc add dev lo root handle 1: htb default 10 r2q 1000 && link_added=1 &&
            tc class add dev lo parent 1: classid 1:10 htb rate 100gbit quantum 200000 && # everything else
            tc class add dev lo parent 1: classid 1:20 htb rate "$LINK_RATE" ceil "$LINK_RATE" quantum 60000 &&
            tc filter add dev lo parent 1: protocol ip u32 match ip sport "$app_port" 0xffff flowid 1:20
    }
    if link_setup; then
        # in rps beside the loopback runs, as link5 and link8
        for round in $(seq 1 "$ROUNDS"); do
            for i in 5 8; do
                IFS='|' read -r -a hs <<<"${headers[$i]}"
                read -r r _ < <(run_wrk "${pids[$i]}" "${urls[$i]}" "${scripts[$i]}" "${hs[@]}")
                rps[link$i]+="$r "
            done
        done
    else
        echo "bench: cannot shape lo with tc (htb and u32 needed in the kernel); the link-bound 304 row is left out"
    fi
    link_cleanup
fi
if [[ -n "${rps[link5]:-}" ]]; then
    printf "%-40s %10s req/s (median; runs: %s)\n" "app node, L1 hit, gzip, $LINK_RATE link" "$(med link5)" "${rps[link5]}" \
        "app node, L1, 304, $LINK_RATE link" "$(med link8)" "${rps[link8]}"
    record "304 revalidation / full gzip hit, the node's answers on a $LINK_RATE link (tc htb on lo)" \
        "$(awk -v a="$(med link8)" -v b="$(med link5)" 'BEGIN {printf "%.2f×", a/b}')" "" "-"
fi
