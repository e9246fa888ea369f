# syntax=docker/dockerfile:1
#
# One image for every Go subcommand of detailpage (source, sync, direct).
# Build from the repository root:
#   docker build -f docker/go.Dockerfile -t detailpage-go .
# The compose services pick the subcommand with `command:`.

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

FROM debian:bookworm-slim
# /var/lib/detailpage holds the source service's SQLite catalog; compose
# mounts a named volume there, which inherits this ownership.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 detailpage \
    && useradd --system --uid 10001 --gid detailpage --home-dir /app --shell /usr/sbin/nologin detailpage \
    && mkdir -p /var/lib/detailpage \
    && chown detailpage:detailpage /var/lib/detailpage
COPY --from=build /out/detailpage /usr/local/bin/detailpage
# The direct-data service renders pages with pongo2 from the same template
# files the app tier uses (--templates /app/templates).
COPY templates/ /app/templates/
WORKDIR /app
USER detailpage:detailpage
# No HEALTHCHECK here: the port depends on the subcommand, so compose
# declares one per service (bash's /dev/tcp against /healthz, no curl needed).
ENTRYPOINT ["/usr/local/bin/detailpage"]
