package topology

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	kafkago "github.com/segmentio/kafka-go"
)

// specs lists how to run each component of the topology.
func (t *Topology) specs() []spec {
	c, p := t.cfg, t.cfg.Ports
	bin := c.Binary
	dir := func(name string) string { return filepath.Join(c.VarDir, name) }
	tokenEnv := []string{"DETAILPAGE_ADMIN_TOKEN=" + c.AdminToken}
	redisSpec := func(name string, port int, healthy func(context.Context) error, extra ...string) spec {
		return spec{
			name: name, addr: Addr(port), healthWait: 15 * time.Second,
			command: func() ([]string, error) {
				if err := os.MkdirAll(dir(name), 0o755); err != nil {
					return nil, err
				}
				argv := []string{"redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
					"--dir", dir(name), "--daemonize", "no", "--save", "", "--appendonly", "yes",
					"--appendfsync", "everysec", "--protected-mode", "no", "--loglevel", "warning",
					// a replica (re)syncs at once instead of after the default 5 s delay
					"--repl-diskless-sync-delay", "0"}
				return append(argv, extra...), nil
			},
			healthy: healthy,
		}
	}
	specs := t.redisSpecs(redisSpec)
	specs = append(specs, []spec{
		{
			name: Broker, addr: Addr(p.Kafka), healthWait: 30 * time.Second,
			command: func() ([]string, error) {
				return []string{bin, "broker", "--port", strconv.Itoa(p.Kafka), "--data-dir", dir("kafka")}, nil
			},
			healthy: kafkaMetadata(Addr(p.Kafka)),
		},
		{
			name: Source, addr: Addr(p.Source), healthWait: 120 * time.Second, env: tokenEnv,
			command: func() ([]string, error) {
				if err := os.MkdirAll(dir("source"), 0o755); err != nil {
					return nil, err
				}
				// --redis: price and stock edits are written to Redis main at
				// once for the realtime service (the fast path).
				argv := []string{bin, "source", "--listen", Addr(p.Source), "--db", filepath.Join(dir("source"), "catalog.db"),
					"--kafka", Addr(p.Kafka), "--seed-products", strconv.Itoa(c.SeedProducts), "--seed-shops", strconv.Itoa(c.SeedShops),
					"--redis", Addr(p.RedisMain)}
				return append(argv, t.sentinelArgs()...), nil
			},
			healthy: httpOK(URL(p.Source) + "/healthz"),
		},
		{
			name: Direct, addr: Addr(p.Direct), healthWait: 30 * time.Second, env: tokenEnv,
			command: func() ([]string, error) {
				argv := []string{bin, "direct", "--listen", Addr(p.Direct), "--redis", Addr(p.RedisMain),
					"--source", c.sourceURL(), "--templates", filepath.Join(c.Root, "templates")}
				argv = append(argv, t.sentinelArgs()...)
				return append(argv, c.DirectArgs...), nil
			},
			healthy: httpOK(URL(p.Direct) + "/healthz"),
		},
		t.syncSpec(Sync, p.Sync),
		{
			name: Hot, addr: Addr(p.Hot), healthWait: 15 * time.Second, env: tokenEnv,
			command: func() ([]string, error) {
				if err := os.MkdirAll(dir("hot"), 0o755); err != nil {
					return nil, err
				}
				argv := []string{bin, "hot", "--listen", Addr(p.Hot), "--state", filepath.Join(dir("hot"), "state.json")}
				return append(argv, c.HotArgs...), nil
			},
			healthy: httpOK(URL(p.Hot) + "/healthz"),
		},
		{
			name: One, addr: Addr(p.One), healthWait: 30 * time.Second, env: tokenEnv,
			command: func() ([]string, error) {
				argv := []string{bin, "one", "--listen", Addr(p.One), "--source", c.sourceURL(), "--redis", Addr(p.RedisMain)}
				argv = append(argv, t.sentinelArgs()...)
				return append(argv, c.OneArgs...), nil
			},
			healthy: httpOK(URL(p.One) + "/healthz"),
		},
		t.nginxSpec(App1, p.App1, "app", t.appArgs()...),
		t.nginxSpec(App2, p.App2, "app", t.appArgs()...),
		t.nginxSpec(Dist, p.Dist, "dist", t.distArgs()...),
		{
			name: Console, addr: Addr(p.Console), healthWait: 15 * time.Second, env: tokenEnv,
			command: func() ([]string, error) {
				return append(t.consoleArgs(), c.ConsoleArgs...), nil
			},
			healthy: httpOK(URL(p.Console) + "/healthz"),
		},
	}...)
	if c.SyncInstances == 2 {
		// right after the first sync, so it starts before the nginx tiers
		i := slices.IndexFunc(specs, func(s spec) bool { return s.name == Sync })
		specs = slices.Insert(specs, i+1, t.syncSpec(Sync2, p.Sync2))
	}
	return specs
}

// consoleArgs runs the console with the address of every service and
// node of the topology (the second sync instance too, when there is one).
func (t *Topology) consoleArgs() []string {
	c, p := t.cfg, t.cfg.Ports
	services := []string{"source=" + URL(p.Source), "sync=" + URL(p.Sync)}
	if c.SyncInstances == 2 {
		services = append(services, "sync2="+URL(p.Sync2))
	}
	services = append(services, "direct="+URL(p.Direct), "hot="+URL(p.Hot), "one="+URL(p.One))
	return []string{c.Binary, "console", "--listen", Addr(p.Console), "--services", strings.Join(services, ","),
		"--apps", URL(p.App1) + "," + URL(p.App2), "--dist-admin", URL(p.DistAdmin), "--hot", URL(p.Hot)}
}

func (t *Topology) syncSpec(name string, port int) spec {
	c, p := t.cfg, t.cfg.Ports
	return spec{
		name: name, addr: Addr(port), healthWait: 30 * time.Second,
		env: []string{"DETAILPAGE_ADMIN_TOKEN=" + c.AdminToken},
		command: func() ([]string, error) {
			argv := []string{c.Binary, "sync", "--listen", Addr(port), "--redis", Addr(p.RedisMain),
				"--source", c.sourceURL(), "--kafka", Addr(p.Kafka), "--group", SyncGroup, "--hot", Addr(p.Hot)}
			return append(argv, t.sentinelArgs()...), nil
		},
		healthy: httpOK(URL(port) + "/healthz"),
	}
}

// readArgs are both nginx tiers' flags for where they read Redis (the app
// tier its pages, both tiers the invalidation stream) and where they report
// the requests they serve (the hot-product service).
func (t *Topology) readArgs() []string {
	c := t.cfg
	args := []string{"--replica", c.replicaForApps(), "--direct", Addr(c.Ports.Direct), "--hot", Addr(c.Ports.Hot)}
	if sentinels := c.SentinelAddrs(); len(sentinels) > 0 {
		// --replica stays the first choice until Sentinel has been asked.
		args = append(args, "--sentinels", strings.Join(sentinels, ","), "--master-name", MasterName)
	}
	return args
}

func (t *Topology) distArgs() []string {
	p := t.cfg.Ports
	return append(t.readArgs(), "--apps", Addr(p.App1)+","+Addr(p.App2), "--source", Addr(p.Source),
		"--admin-listen", Addr(p.DistAdmin), "--one", Addr(p.One))
}

func (t *Topology) appArgs() []string {
	c := t.cfg
	args := t.readArgs()
	if c.AppL1TTL > 0 {
		args = append(args, "--l1-ttl", c.AppL1TTL.String())
	}
	if c.AppL2TTL > 0 {
		args = append(args, "--l2-ttl", c.AppL2TTL.String())
	}
	if c.AppWarmTop != 0 {
		args = append(args, "--warm-top", strconv.Itoa(max(c.AppWarmTop, 0)))
	}
	return args
}

// sentinelArgs are the Go services' flags that make them find Redis main
// through the Sentinels (none in the small layout: --redis is main).
func (t *Topology) sentinelArgs() []string {
	sentinels := t.cfg.SentinelAddrs()
	if len(sentinels) == 0 {
		return nil
	}
	return []string{"--redis-sentinels", strings.Join(sentinels, ","), "--redis-master-name", MasterName}
}

// Replica priorities (lower is promoted first; Sentinel never promotes 0):
// data centre A's servers before B's. Main has A's priority too, so that
// after a failover it rejoins as A's replica.
const (
	priorityA = 10
	priorityB = 100
)

// Sentinel timings, for loopback: main is declared down after
// SentinelDownAfter without an answer; a failover that stalls is retried
// after failoverTimeout.
const (
	SentinelDownAfter = 2 * time.Second
	failoverTimeout   = 10 * time.Second
)

// redisSpecs are the Redis servers and, unless NoSentinel, data centre B's
// replicas and the three Sentinels.
func (t *Topology) redisSpecs(redisSpec func(string, int, func(context.Context) error, ...string) spec) []spec {
	c, p := t.cfg, t.cfg.Ports
	if c.NoSentinel {
		return []spec{
			redisSpec(RedisMain, p.RedisMain, redisPing(Addr(p.RedisMain))),
			// The replica serves stale data while its link is down: pages keep
			// coming from it when main fails.
			redisSpec(RedisReplica, p.RedisReplica, replicaInSync(Addr(p.RedisReplica)), "--replicaof", "127.0.0.1", strconv.Itoa(p.RedisMain),
				"--replica-read-only", "yes", "--replica-serve-stale-data", "yes", "--appendonly", "no"),
		}
	}
	// Every server can become main, so each keeps its AOF (redisSpec:
	// appendfsync everysec). Each (re)starts in the role the Sentinels last
	// recorded (mainPort): after a failover the old main comes back as a
	// replica of the new one, never as a second main, and no replica
	// resyncs from a server that lost writes.
	node := func(name string, port, prio int) spec {
		s := redisSpec(name, port, redisReady(Addr(port)))
		base := s.command
		s.command = func() ([]string, error) {
			argv, err := base()
			if err != nil {
				return nil, err
			}
			argv = append(argv, "--replica-priority", strconv.Itoa(prio))
			if main := t.mainPort(); main != port {
				argv = append(argv, "--replicaof", "127.0.0.1", strconv.Itoa(main),
					"--replica-read-only", "yes", "--replica-serve-stale-data", "yes")
			}
			return argv, nil
		}
		return s
	}
	specs := []spec{
		node(RedisMain, p.RedisMain, priorityA),
		node(RedisReplica, p.RedisReplica, priorityA),
		node(RedisB1, p.RedisB1, priorityB),
		node(RedisB2, p.RedisB2, priorityB),
	}
	// The current main starts first: a replica is healthy once in sync.
	if i := slices.IndexFunc(specs, func(s spec) bool { return s.addr == Addr(t.mainPort()) }); i > 0 {
		m := specs[i]
		specs = slices.Insert(slices.Delete(specs, i, i+1), 0, m)
	}
	for i, name := range Sentinels {
		specs = append(specs, t.sentinelSpec(name, p.Sentinel[i], i == len(Sentinels)-1))
	}
	return specs
}

// mainPort is the port of Redis main as the Sentinels last recorded it in
// their config files (the monitor line of the highest config epoch), or
// Ports.RedisMain before any Sentinel has written one.
func (t *Topology) mainPort() int {
	c := t.cfg
	port, best := c.Ports.RedisMain, -1
	for _, name := range Sentinels {
		b, err := os.ReadFile(filepath.Join(c.VarDir, name, "sentinel.conf"))
		if err != nil {
			continue
		}
		p, epoch, ok := parseSentinelConf(string(b))
		if ok && epoch > best {
			port, best = p, epoch
		}
	}
	return port
}

// parseSentinelConf reads main's port and the config epoch of MasterName
// from a Sentinel config file.
func parseSentinelConf(conf string) (port, epoch int, ok bool) {
	for _, line := range strings.Split(conf, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 6 && f[0] == "sentinel" && f[1] == "monitor" && f[2] == MasterName:
			if p, err := strconv.Atoi(f[4]); err == nil {
				port, ok = p, true
			}
		case len(f) == 4 && f[0] == "sentinel" && f[1] == "config-epoch" && f[2] == MasterName:
			epoch, _ = strconv.Atoi(f[3])
		}
	}
	return port, epoch, ok
}

// redisReady passes for a main, and for a replica once its sync with main
// is done (before that it would answer every read with "no such key").
func redisReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
		defer rdb.Close()
		info, err := rdb.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "role:master") && !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica not in sync with main yet")
		}
		return nil
	}
}

// sentinelSpec runs one Sentinel (`redis-server <conf> --sentinel`, what
// Debian's redis-sentinel runs). Sentinel rewrites its config file with
// what it learns (current main, replicas, other Sentinels), so each has its
// own, written once and kept across restarts. The last one started is
// healthy only when the Sentinels see each other (ckquorum).
func (t *Topology) sentinelSpec(name string, port int, last bool) spec {
	c, p := t.cfg, t.cfg.Ports
	dir := filepath.Join(c.VarDir, name)
	conf := filepath.Join(dir, "sentinel.conf")
	return spec{
		name: name, addr: Addr(port), healthWait: 30 * time.Second,
		command: func() ([]string, error) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
			if _, err := os.Stat(conf); errors.Is(err, fs.ErrNotExist) {
				if err := os.WriteFile(conf, []byte(SentinelConfig(port, dir, p.RedisMain)), 0o644); err != nil {
					return nil, err
				}
			}
			return []string{"redis-server", conf, "--sentinel"}, nil
		},
		healthy: sentinelReady(Addr(port), last),
	}
}

// SentinelConfig is a Sentinel's initial config file: it watches main at
// mainPort under MasterName with quorum 2.
func SentinelConfig(port int, dir string, mainPort int) string {
	return fmt.Sprintf(`# Written by detailpage (topology); Sentinel rewrites it with what it learns.
bind 127.0.0.1
port %d
daemonize no
protected-mode no
dir %q
loglevel notice
sentinel resolve-hostnames no
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
sentinel parallel-syncs %s 2
`, port, dir, MasterName, mainPort, MasterName, SentinelDownAfter.Milliseconds(), MasterName, failoverTimeout.Milliseconds(), MasterName)
}

// sentinelReady passes when the Sentinel knows main's address, and with
// quorum also when enough Sentinels see each other to fail over.
func sentinelReady(addr string, quorum bool) func(context.Context) error {
	return func(ctx context.Context) error {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
		defer sc.Close()
		if err := sc.GetMasterAddrByName(ctx, MasterName).Err(); err != nil {
			return fmt.Errorf("sentinel %s: %w", addr, err)
		}
		if quorum {
			if err := sc.CkQuorum(ctx, MasterName).Err(); err != nil {
				return fmt.Errorf("sentinel %s: %w", addr, err)
			}
		}
		return nil
	}
}

// nginxSpec runs `detailpage nginx`, which renders the tier's config into
// the component's dir and execs nginx in the foreground.
func (t *Topology) nginxSpec(name string, port int, tier string, args ...string) spec {
	c := t.cfg
	return spec{
		name: name, addr: Addr(port), healthWait: 15 * time.Second,
		env: []string{"DETAILPAGE_ADMIN_TOKEN=" + c.AdminToken},
		command: func() ([]string, error) {
			if err := searchableByWorkers(c.VarDir); err != nil {
				return nil, err
			}
			argv := []string{c.Binary, "nginx", "--tier", tier, "--name", name, "--listen", Addr(port),
				"--prefix", filepath.Join(c.VarDir, name), "--root", c.Root}
			return append(argv, args...), nil
		},
		healthy: httpOK(URL(port) + "/_health"),
	}
}

// searchableByWorkers lets nginx workers, which run as an unprivileged
// user when we are root, reach their prefix under the var dir (a temp dir
// is 0700): o+x only, so they can pass through it but not list it.
func searchableByWorkers(varDir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(varDir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o001 != 0 {
		return nil
	}
	return os.Chmod(varDir, fi.Mode().Perm()|0o001)
}

func redisPing(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
		defer rdb.Close()
		return rdb.Ping(ctx).Err()
	}
}

// replicaInSync passes once the replica has finished its sync with main:
// before that it would answer every read with "no such key".
func replicaInSync(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
		defer rdb.Close()
		info, err := rdb.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica not in sync with main yet")
		}
		return nil
	}
}

func kafkaMetadata(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d kafkago.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.Brokers()
		return err
	}
}

var healthClient = &http.Client{Timeout: time.Second}

func httpOK(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := healthClient.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}
