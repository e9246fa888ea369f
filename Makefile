# detailpage — the two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/detailpage
# Unit packages: everything but the end-to-end suite.
UNIT_PKGS = $(shell $(GO) list ./go/... | grep -v /go/e2e)

.PHONY: run test bench chaos build deps test-deps lint unit lua e2e clean fuzz

## run: install what is missing, build, start the whole topology on loopback
run: deps build
	./$(BIN) up

## test: lint, unit tests (-race), Lua tests and the end-to-end suite
test: test-deps build lint unit lua e2e

## bench: throughput of the page path (wrk) next to nginx serving a static file;
##        the write path (events/s into Redis, edit-to-page latency, edits behind a
##        refresh backlog); hot products: detection latency over repeated surges,
##        one hot id at the dist tier next to static nginx, reporting's cost on
##        an app node's L1 hit (on vs off), the hot service's ingest and memory
##        at 10 million ids; preheat products/s and page p99 during it; the
##        realtime service's answers/s, p99 at half that rate and collapsing; the
##        resilience layer's overhead per command; Redis main's CPU per product
##        written, one script call per product next to one per value; source
##        lookups per 1,000 requests under cache attacks, defences on and off
##        Every benchmark with a target records a row (go/internal/benchrow);
##        the run ends with one table: each row's figure next to its target.
bench: export DETAILPAGE_BENCH_RESULTS = $(CURDIR)/var/bench-results.tsv
bench: test-deps build
	@mkdir -p var && rm -f $(DETAILPAGE_BENCH_RESULTS)
	./scripts/bench.sh
	DETAILPAGE_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./go/e2e/
	$(GO) test -run '^$$' -bench . -benchmem ./go/internal/resilience/ ./go/internal/hot/ ./go/internal/realtime/ ./go/internal/redisstore/
	./$(BIN) bench-protect --root $(CURDIR)
	./scripts/bench-table.sh $(DETAILPAGE_BENCH_RESULTS)

## chaos: the chaos suite in full (docs/reliability.md): under page load and
##        edits, on the Sentinel layout every component frozen 10 s (SIGSTOP)
##        and killed (SIGKILL), the sync/direct→source link given 500 ms
##        latency, a timeout, resets and a bandwidth limit (toxiproxy), and
##        Redis main frozen 30 s (failover); then on the small layout the same
##        toxics on the app→replica link; prints the tables.
##        `make test` runs a short version of the same test (small layout).
chaos: test-deps build
	DETAILPAGE_BIN=$(CURDIR)/$(BIN) DETAILPAGE_CHAOS=full $(GO) test -count=1 -timeout 30m -v -run 'TestChaos$$' ./go/e2e/

build:
	$(GO) build -o $(BIN) ./go/cmd/detailpage

deps:
	./scripts/install-deps.sh

test-deps:
	./scripts/install-deps.sh --test

lint:
	@out=$$(gofmt -l go); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./go/...
	luacheck -q lua

unit:
	$(GO) test -race -count=1 -timeout 10m $(UNIT_PKGS)

lua:
	busted --lua=luajit lua/spec

## fuzz: the template parity fuzz (pongo2 against the Lua renderer) for
##       FUZZTIME (default 5m) with a random seed, printed; minimised failures
##       are written to go/internal/page/testdata/fuzz (see docs/template.md)
fuzz:
	$(GO) test -count=1 -timeout 0 -v -run 'TestParityFuzz$$' ./go/internal/page/ \
		-parity.seed=0 -parity.duration=$(or $(FUZZTIME),5m) -parity.out=testdata/fuzz

e2e: build
	DETAILPAGE_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 12m -v ./go/e2e/...

clean:
	rm -rf bin
