package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/detailpage/detailpage/go/internal/broker"
	"github.com/detailpage/detailpage/go/internal/direct"
	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/kafka"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/source"
	"github.com/detailpage/detailpage/go/internal/syncer"
	"github.com/detailpage/detailpage/go/internal/topology"
)

const envToken = "DETAILPAGE_ADMIN_TOKEN"

func logLevel(f *flags) *string {
	return f.String("log-level", "DETAILPAGE_LOG_LEVEL", "info", "log level: debug, info, warn or error")
}

// commandSettings is the flag that sets the resilience commands of a
// service, the one place their settings come from beside the service's
// defaults (cmds). parse turns it into Config.Commands.
func commandSettings(f *flags, cmds []resilience.Command) func() ([]resilience.Command, error) {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.Name
	}
	spec := f.String("commands", "DETAILPAGE_COMMANDS", "",
		"resilience command settings, e.g. 'name:timeout=500ms,max_concurrent=128;name2:sleep_window=5s' "+
			"(fields: timeout, max_concurrent, fallback_max_concurrent, request_volume_threshold, "+
			"error_percent_threshold, sleep_window, window); commands: "+strings.Join(names, ", "))
	return func() ([]resilience.Command, error) { return resilience.ParseSettings(*spec) }
}

// service is a Go service as its command runs it: opened, run until the
// command's context ends, closed.
type service interface {
	Run(ctx context.Context) error
	Close() error
}

// serve is what every Go service's command does after declaring its flags:
// parse them, build the logger (tagged name) and the resilience command
// settings, open the service with those and the process's telemetry, run
// it until ctx ends and close it.
func serve(ctx context.Context, name string, f *flags, args []string, lvl *string, cmds func() ([]resilience.Command, error),
	open func(log *slog.Logger, cmds []resilience.Command, tel httpapi.Telemetry) (service, error)) error {
	if err := f.parse(args); err != nil {
		return err
	}
	log, err := newLogger(name, *lvl)
	if err != nil {
		return err
	}
	settings, err := cmds()
	if err != nil {
		return err
	}
	tel, stopTel := newTelemetry()
	defer stopTel()
	svc, err := open(log, settings, tel)
	if err != nil {
		return err
	}
	defer svc.Close()
	return svc.Run(ctx)
}

func runBroker(ctx context.Context, args []string, _, stderr io.Writer) error {
	f := newFlags("broker", stderr)
	port := f.Int("port", "DETAILPAGE_BROKER_PORT", 9092, "loopback port to listen on")
	dataDir := f.String("data-dir", "DETAILPAGE_BROKER_DATA_DIR", "var/kafka", "directory for topic data and group offsets")
	partitions := f.Int("partitions", "DETAILPAGE_BROKER_PARTITIONS", 4, "partitions per catalog topic")
	lvl := logLevel(f)
	if err := f.parse(args); err != nil {
		return err
	}
	log, err := newLogger("broker", *lvl)
	if err != nil {
		return err
	}
	return broker.Run(ctx, broker.Config{Port: *port, DataDir: *dataDir, Partitions: int32(*partitions)}, log)
}

func runSource(ctx context.Context, args []string, _, stderr io.Writer) error {
	f := newFlags("source", stderr)
	listen := f.String("listen", "DETAILPAGE_LISTEN", "127.0.0.1:9101", "address of the source API")
	db := f.String("db", "DETAILPAGE_DB", "var/source/catalog.db", "SQLite catalog file (created and seeded on first start)")
	brokers := f.String("kafka", "DETAILPAGE_KAFKA", "127.0.0.1:9092", "Kafka brokers, comma-separated")
	products := f.Int("seed-products", "DETAILPAGE_SEED_PRODUCTS", 10_000, "products in the catalog seeded on first start")
	shops := f.Int("seed-shops", "DETAILPAGE_SEED_SHOPS", 250, "shops in the catalog seeded on first start")
	// The fast path: committed price and stock edits are written to their
	// realtime Redis keys at once (--redis "" and no sentinels: off).
	rds := redisFlags(f)
	f.Lookup("redis").Usage = f.env("DETAILPAGE_REDIS", `Redis main that committed price and stock edits are also written to at once, for the OneServer (the fast path; "": off); several addresses: a Redis Cluster; ignored with --redis-sentinels`)
	cmds := commandSettings(f, source.Commands())
	lvl := logLevel(f)
	return serve(ctx, "source", f, args, lvl, cmds, func(log *slog.Logger, settings []resilience.Command, tel httpapi.Telemetry) (service, error) {
		bl, err := kafka.ParseBrokers(*brokers)
		if err != nil {
			return nil, err
		}
		return source.Open(ctx, source.Config{
			Listen: *listen, DBPath: *db, Brokers: bl, AdminToken: os.Getenv(envToken),
			SeedProducts: *products, SeedShops: *shops, Redis: rds(), Commands: settings,
		}, log, tel)
	})
}

func runSync(ctx context.Context, args []string, _, stderr io.Writer) error {
	f := newFlags("sync", stderr)
	listen := f.String("listen", "DETAILPAGE_LISTEN", "127.0.0.1:9102", "address of the health, metrics and hystrix endpoints")
	brokers := f.String("kafka", "DETAILPAGE_KAFKA", "127.0.0.1:9092", "Kafka brokers, comma-separated")
	rds := redisFlags(f)
	src := f.String("source", "DETAILPAGE_SOURCE", "http://127.0.0.1:9101", "source services base URL")
	group := f.String("group", "DETAILPAGE_SYNC_GROUP", "detailpage-sync", "Kafka consumer group shared by sync instances")
	batch := f.Int("batch", "DETAILPAGE_SYNC_BATCH", 500, "most change events handled in one round")
	wait := f.Duration("batch-wait", "DETAILPAGE_SYNC_BATCH_WAIT", 20*time.Millisecond, "how long to gather a batch after its first event (also the dedupe window)")
	idle := f.Duration("batch-idle", "DETAILPAGE_SYNC_BATCH_IDLE", time.Millisecond, "edits (catalog.changes.high): a batch goes once the reader has caught up with the topic and no event came for this long, without waiting out --batch-wait (0: edits wait it out too)")
	attempts := f.Int("max-attempts", "DETAILPAGE_SYNC_MAX_ATTEMPTS", 10, "tries of a failed change before it goes to catalog.dlq")
	retryBase := f.Duration("retry-base", "DETAILPAGE_SYNC_RETRY_BASE", 500*time.Millisecond, "first retry delay; doubles with each attempt")
	retryMax := f.Duration("retry-max", "DETAILPAGE_SYNC_RETRY_MAX", 30*time.Second, "longest retry delay")
	pipeline := f.Int("pipeline", "DETAILPAGE_SYNC_PIPELINE", 3, "batches of one topic handled at once (offsets still committed in order)")
	hot := f.String("hot", "DETAILPAGE_HOT", "127.0.0.1:9104", "hot-product services host:port, comma-separated: a cold Redis main is preheated with their top products first (\"\": catalog order)")
	coldCheck := f.Duration("cold-check", "DETAILPAGE_SYNC_COLD_CHECK", syncer.DefaultColdCheck, "how often Redis main is checked for being cold (warm marker dp:warm gone, or DBSIZE far below the catalog) and then preheated and refreshed; 0: off")
	cmds := commandSettings(f, syncer.Commands())
	lvl := logLevel(f)
	return serve(ctx, "sync", f, args, lvl, cmds, func(log *slog.Logger, settings []resilience.Command, tel httpapi.Telemetry) (service, error) {
		bl, err := kafka.ParseBrokers(*brokers)
		if err != nil {
			return nil, err
		}
		return syncer.Open(syncer.Config{
			Listen: *listen, Brokers: bl, Redis: rds(), SourceURL: *src, Group: *group, BatchSize: *batch, BatchWait: *wait, BatchIdle: *idle,
			MaxAttempts: *attempts, RetryBase: *retryBase, RetryMax: *retryMax, Pipeline: *pipeline,
			ColdCheck: *coldCheck, HotURLs: syncer.HotURLs(splitList(*hot)), AdminToken: os.Getenv(envToken),
			Commands: settings,
		}, log, tel)
	})
}

func runDirect(ctx context.Context, args []string, _, stderr io.Writer) error {
	f := newFlags("direct", stderr)
	listen := f.String("listen", "DETAILPAGE_LISTEN", "127.0.0.1:9103", "address of the direct-data API and pages")
	rds := redisFlags(f)
	src := f.String("source", "DETAILPAGE_SOURCE", "http://127.0.0.1:9101", "source services base URL")
	tmpl := f.String("templates", "DETAILPAGE_TEMPLATES", "templates", "directory holding item.html, 404.html and 503.html")
	size := f.Int("cache-size", "DETAILPAGE_DIRECT_CACHE_SIZE", 50_000, "page documents kept in the local cache")
	ttl := f.Duration("cache-ttl", "DETAILPAGE_DIRECT_CACHE_TTL", 2*time.Second, "local cache TTL of a document (±20% jitter)")
	neg := f.Duration("negative-ttl", "DETAILPAGE_DIRECT_NEGATIVE_TTL", 5*time.Second, "local cache TTL of a missing id")
	// Cache protections (docs/protection.md); each can be turned off for comparison.
	def := direct.Defaults()
	bloom := f.EnvBool("bloom", "DETAILPAGE_DIRECT_BLOOM", def.Bloom, "refuse ids a Bloom filter of existing products says never existed, without asking Redis or the source")
	bloomCap := f.Int("bloom-capacity", "DETAILPAGE_DIRECT_BLOOM_CAPACITY", int(def.BloomCapacity), "product ids the Bloom filter is sized for")
	bloomFP := f.EnvFloat("bloom-fp-rate", "DETAILPAGE_DIRECT_BLOOM_FP_RATE", def.BloomFPRate, "Bloom filter false-positive rate at capacity")
	single := f.EnvBool("singleflight", "DETAILPAGE_DIRECT_SINGLEFLIGHT", def.SingleFlight, "collapse concurrent lookups of one id into one")
	xfetch := f.EnvBool("xfetch", "DETAILPAGE_DIRECT_XFETCH", def.XFetch, "refresh hot entries early in the background (XFetch)")
	beta := f.EnvFloat("xfetch-beta", "DETAILPAGE_DIRECT_XFETCH_BETA", def.XFetchBeta, "XFetch β: above 1 refreshes earlier")
	stale := f.EnvBool("stale", "DETAILPAGE_DIRECT_STALE", def.Stale, "serve an expired entry while one background refresh runs")
	staleTTL := f.Duration("stale-ttl", "DETAILPAGE_DIRECT_STALE_TTL", def.StaleTTL, "how long past expiry an entry is served at once while it refreshes (later it is only the last good copy, used when a fresh read fails)")
	limit := f.Int("rebuild-concurrency", "DETAILPAGE_DIRECT_REBUILD_CONCURRENCY", def.RebuildConcurrency, "rebuilds from the source at once; beyond it 503 at once (0: no limit)")
	cmds := commandSettings(f, direct.Commands(def))
	lvl := logLevel(f)
	return serve(ctx, "direct", f, args, lvl, cmds, func(log *slog.Logger, settings []resilience.Command, tel httpapi.Telemetry) (service, error) {
		if *bloomCap < 1 {
			return nil, fmt.Errorf("direct: --bloom-capacity must be at least 1")
		}
		return direct.Open(direct.Config{
			Listen: *listen, Redis: rds(), SourceURL: *src, TemplatesDir: *tmpl,
			CacheSize: *size, CacheTTL: *ttl, NegativeTTL: *neg,
			Bloom: *bloom, BloomCapacity: uint(*bloomCap), BloomFPRate: *bloomFP,
			SingleFlight: *single, XFetch: *xfetch, XFetchBeta: *beta, Stale: *stale, StaleTTL: *staleTTL,
			RebuildConcurrency: *limit, LoadTimeout: def.LoadTimeout, Commands: settings,
		}, log, tel)
	})
}

// runNginx renders the tier's config and replaces this process with nginx
// (daemon off), so whoever started us — the topology, or a container
// runtime — signals nginx's master directly.
func runNginx(_ context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("nginx", stderr)
	tier := f.String("tier", "DETAILPAGE_NGINX_TIER", "", "app or dist")
	name := f.String("name", "DETAILPAGE_NODE", "", "node name: app1, app2, dist (X-Served-By of an app node)")
	listen := f.String("listen", "DETAILPAGE_LISTEN", "", "page port address, host:port")
	prefix := f.String("prefix", "DETAILPAGE_NGINX_PREFIX", "", "nginx prefix dir for config, pid, temp files and logs")
	root := f.String("root", "DETAILPAGE_ROOT", ".", "repository root holding lua/, nginx/ and templates/")
	replica := f.String("replica", "DETAILPAGE_REPLICA", "127.0.0.1:6381", "Redis replica host:port the tier reads (app: pages; both: the invalidation stream); with --sentinels the first choice until a Sentinel answers")
	sentinels := f.String("sentinels", "DETAILPAGE_SENTINELS", "", "Redis Sentinels host:port, comma-separated, that name the replicas to read (empty: --replica only)")
	masterName := f.String("master-name", "DETAILPAGE_REDIS_MASTER_NAME", "detailpage", "the name the Sentinels know Redis main by")
	hot := f.String("hot", "DETAILPAGE_HOT", "127.0.0.1:9104", "hot-product services host:port, comma-separated, that get this node's request counts (\"\": no hot-product handling)")
	directAddr := f.String("direct", "DETAILPAGE_DIRECT", "127.0.0.1:9103", "direct-data service host:port")
	apps := f.String("apps", "DETAILPAGE_APPS", "127.0.0.1:8081,127.0.0.1:8082", "dist: app nodes, comma-separated host:port")
	src := f.String("source", "DETAILPAGE_SOURCE_ADDR", "127.0.0.1:9101", "dist: source service host:port (pictures)")
	one := f.String("one", "DETAILPAGE_ONE", "127.0.0.1:9105", "dist: OneServer nodes, comma-separated host:port, that answer /api/realtime and /api/realtime/<id> (round robin over the healthy ones, probed at /healthz; \"\": no such route, 404)")
	adminListen := f.String("admin-listen", "DETAILPAGE_DIST_ADMIN_LISTEN", "127.0.0.1:8070", "dist: internal admin port, host:port (GET /_admin/status with the admin token)")
	workerUser := f.String("user", "DETAILPAGE_NGINX_USER", "www-data", "user the nginx workers run as when started as root (ignored otherwise)")
	bin := f.String("nginx", "DETAILPAGE_NGINX_BIN", "", "nginx binary (default: openresty if installed, else nginx)")
	modules := f.String("modules-dir", "DETAILPAGE_NGINX_MODULES", "/usr/lib/nginx/modules", "dynamic modules dir; \"none\" when lua is built in (OpenResty)")
	workers := f.Int("workers", "DETAILPAGE_NGINX_WORKERS", 2, "worker processes (0: one per core)")
	resolver := f.String("resolver", "DETAILPAGE_NGINX_RESOLVER", "", "app: DNS server for the replica's host name (compose: 127.0.0.11); empty for IP addresses")
	// The app tier's defaults live in DEFAULTS in lua/detailpage/app.lua;
	// a flag left at 0 passes nothing, so that default applies.
	l1TTL := f.Duration("l1-ttl", "DETAILPAGE_L1_TTL", 0, "app: how long a page stays in a worker's L1, ±20% jitter (0: the default in lua/detailpage/app.lua)")
	l2TTL := f.Duration("l2-ttl", "DETAILPAGE_L2_TTL", 0, "app: how long a page stays fresh in the node's L2, ±20% jitter (0: the default in lua/detailpage/app.lua)")
	warmTop := f.Int("warm-top", "DETAILPAGE_WARM_TOP", 5000, "app: at start, load the hottest N pages (the hot services' hourly, then daily top list) into L2 before /_health answers 200 and the dist tier sends traffic (0: off)")
	warmMax := f.Duration("warm-max", "DETAILPAGE_WARM_MAX", 5*time.Second, "app: longest the warm-up keeps /_health at 503 \"warming\"; then the node takes traffic however far it got")
	render := f.Bool("render-only", false, "write the config, print its path and exit")
	if err := f.parse(args); err != nil {
		return err
	}
	n := topology.Nginx{
		Tier: *tier, Name: *name, Listen: *listen, Prefix: *prefix, Root: *root, Replica: *replica,
		Sentinels: splitList(*sentinels), MasterName: *masterName, Hot: splitList(*hot),
		Direct: *directAddr, Source: *src, AdminListen: *adminListen, Workers: *workers, Resolver: *resolver,
		L1TTL: l1TTL.Seconds(), L2TTL: l2TTL.Seconds(), RenderOnly: *render,
		WarmTop: *warmTop, WarmMax: warmMax.Seconds(),
	}
	if *tier == "app" && *warmMax <= 0 {
		return fmt.Errorf("--warm-max %s: want a positive duration", *warmMax)
	}
	if os.Geteuid() == 0 {
		// Workers drop root; without root there is no user to switch to.
		n.User = *workerUser
	}
	n.Apps = splitList(*apps)
	n.One = splitList(*one)
	path := *bin
	if path == "" {
		path = findNginx()
	}
	if *modules != "none" && !strings.Contains(path, "openresty") {
		n.LoadModules, n.ModulesDir = true, *modules
	}
	if n.Prefix == "" {
		n.Prefix = "var/" + n.Name
	}
	conf, err := topology.RenderNginx(n)
	if err != nil {
		return err
	}
	if *render {
		fmt.Fprintln(stdout, conf)
		return nil
	}
	if err := topology.PrepareForUser(n); err != nil {
		return err
	}
	if path == "" {
		return errors.New("nginx not found: install nginx and libnginx-mod-http-lua (scripts/install-deps.sh) or pass --nginx")
	}
	argv := []string{path, "-p", n.Prefix, "-c", conf, "-e", n.Prefix + "/logs/error.log", "-g", "daemon off;"}
	slog.Debug("exec nginx", "argv", argv)
	return syscall.Exec(path, argv, os.Environ())
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// redisFlags are a Go service's flags for Redis main: its address, or the
// Sentinels that name it. The returned func gives the redisstore.Open spec.
func redisFlags(f *flags) func() string {
	rds := f.String("redis", "DETAILPAGE_REDIS", "127.0.0.1:6380", "Redis main address (several: a Redis Cluster); ignored with --redis-sentinels")
	sentinels := f.String("redis-sentinels", "DETAILPAGE_REDIS_SENTINELS", "", "Redis Sentinels host:port, comma-separated: main is found through them and followed across a failover")
	master := f.String("redis-master-name", "DETAILPAGE_REDIS_MASTER_NAME", "detailpage", "the name the Sentinels know Redis main by")
	return func() string {
		if strings.TrimSpace(*sentinels) == "" {
			return *rds
		}
		return redisstore.SentinelSpec(*master, splitList(*sentinels))
	}
}

func findNginx() string {
	for _, name := range []string{"openresty", "nginx"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	for _, p := range []string{"/usr/local/openresty/bin/openresty", "/usr/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// EnvBool is a boolean flag whose default can come from the environment.
func (f *flags) EnvBool(name, envName string, def bool, usage string) *bool {
	if v, ok := os.LookupEnv(envName); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: not a boolean", envName, v))
		} else {
			def = b
		}
	}
	return f.FlagSet.Bool(name, def, f.env(envName, usage))
}

// EnvFloat is a float64 flag whose default can come from the environment.
func (f *flags) EnvFloat(name, envName string, def float64, usage string) *float64 {
	if v, ok := os.LookupEnv(envName); ok {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: not a number", envName, v))
		} else {
			def = x
		}
	}
	return f.FlagSet.Float64(name, def, f.env(envName, usage))
}
