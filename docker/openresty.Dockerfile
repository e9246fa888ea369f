# syntax=docker/dockerfile:1
#
# The nginx tiers (app1, app2, dist) on OpenResty: the detailpage binary
# renders nginx/<tier>.conf.tmpl and execs openresty in the foreground.
# lua/, nginx/ and templates/ are not baked in: compose mounts them from the
# repository, read-only, at /app/lua, /app/nginx and /app/templates (--root /app).
# Build from the repository root:
#   docker build -f docker/openresty.Dockerfile -t detailpage-openresty .

FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY go/ ./go/
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/detailpage ./go/cmd/detailpage

FROM openresty/openresty:1.27.1.2-bookworm
# lua-zlib (Debian's, as scripts/install-deps.sh installs it): the app tier
# keeps every page also gzip-compressed. OpenResty's LuaJIT does not search
# Debian's Lua 5.1 module directory, so the module is linked into its
# site/lualib (the path differs per architecture: dpkg names it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends lua-zlib \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s "$(dpkg -L lua-zlib | grep '/lua/5\.1/zlib\.so$')" /usr/local/openresty/site/lualib/zlib.so
# Run unprivileged: the pages listen on ports above 1024, every temp path
# lives under the --prefix, and the nginx logs go to the container's stderr.
RUN groupadd --system --gid 10001 detailpage \
    && useradd --system --uid 10001 --gid detailpage --home-dir /app --shell /usr/sbin/nologin detailpage \
    && mkdir -p /app /tmp/nginx/logs /tmp/nginx/tmp \
    && ln -sf /dev/stderr /tmp/nginx/logs/error.log \
    && chown -R detailpage:detailpage /tmp/nginx
COPY --from=build /out/detailpage /usr/local/bin/detailpage
WORKDIR /app
USER detailpage:detailpage
# The base image's STOPSIGNAL (SIGQUIT) stays: openresty shuts down gracefully.
ENTRYPOINT ["/usr/local/bin/detailpage", "nginx", "--nginx", "/usr/local/openresty/bin/openresty", "--modules-dir", "none"]
