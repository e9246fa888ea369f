#!/usr/bin/env bash
# Installs what detailpage needs on Debian (bookworm or later), idempotently:
# nginx with the Lua module, Redis, the Lua libraries the app tier loads, and
# the tools `make test` and `make bench` use. Safe to run again: packages
# already present are skipped without touching apt.
set -euo pipefail

# lua-zlib: the app tier keeps every page also gzip-compressed (lua/detailpage/app.lua).
RUNTIME=(nginx libnginx-mod-http-ndk libnginx-mod-http-lua lua-resty-core
         lua-resty-lrucache lua-cjson lua-nginx-redis lua-zlib redis-server redis-sentinel)
# luajit2 is OpenResty's LuaJIT: Debian's plain luajit conflicts with the
# libluajit2 that libnginx-mod-http-lua links against.
# chromium runs the browser tests (chromedp drives it headless); the Noto CJK
# fonts let it draw the page's Chinese text in their screenshots.
# bsdextrautils has column(1), which prints make bench's closing table.
TEST=(luajit2 lua-busted lua-check wrk ca-certificates chromium fonts-noto-cjk bsdextrautils)

want=("${RUNTIME[@]}")
if [[ "${1:-}" == "--test" ]]; then
    want+=("${TEST[@]}")
fi

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if ((${#missing[@]} == 0)); then
    exit 0
fi

if [[ ! -r /etc/debian_version ]] || ! command -v apt-get >/dev/null; then
    echo "install-deps: this is not a Debian machine; install these packages (or their equivalents) yourself:" >&2
    echo "  ${missing[*]}" >&2
    exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: run as root (or: sudo apt-get install -y ${missing[*]})" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# nginx's Debian package starts a system nginx on :80; detailpage runs its
# own nginx processes and does not need it.
if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
    systemctl stop nginx || true
fi
# Likewise redis-sentinel's package starts a system Sentinel on :26379, the
# port of detailpage's first Sentinel (which runs `redis-server <conf>
# --sentinel` with a config of its own under var/).
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-sentinel 2>/dev/null; then
    systemctl stop redis-sentinel || true
fi
echo "install-deps: done"
