package topology

import (
	"context"
	"fmt"
	"io"
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
	specs := []spec{
		redisSpec(RedisMain, p.RedisMain, redisPing(Addr(p.RedisMain))),
		// The replica serves stale data while its link is down: pages keep
		// coming from it when main fails.
		redisSpec(RedisReplica, p.RedisReplica, replicaInSync(Addr(p.RedisReplica)), "--replicaof", "127.0.0.1", strconv.Itoa(p.RedisMain),
			"--replica-read-only", "yes", "--replica-serve-stale-data", "yes", "--appendonly", "no"),
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
				return []string{bin, "source", "--listen", Addr(p.Source), "--db", filepath.Join(dir("source"), "catalog.db"),
					"--kafka", Addr(p.Kafka), "--seed-products", strconv.Itoa(c.SeedProducts), "--seed-shops", strconv.Itoa(c.SeedShops)}, nil
			},
			healthy: httpOK(URL(p.Source) + "/healthz"),
		},
		{
			name: Direct, addr: Addr(p.Direct), healthWait: 30 * time.Second, env: tokenEnv,
			command: func() ([]string, error) {
				argv := []string{bin, "direct", "--listen", Addr(p.Direct), "--redis", Addr(p.RedisMain),
					"--source", c.sourceURL(), "--templates", filepath.Join(c.Root, "templates")}
				return append(argv, c.DirectArgs...), nil
			},
			healthy: httpOK(URL(p.Direct) + "/healthz"),
		},
		t.syncSpec(Sync, p.Sync),
		t.nginxSpec(App1, p.App1, "app", t.appArgs()...),
		t.nginxSpec(App2, p.App2, "app", t.appArgs()...),
		t.nginxSpec(Dist, p.Dist, "dist", "--apps", Addr(p.App1)+","+Addr(p.App2), "--direct", Addr(p.Direct), "--source", Addr(p.Source),
			"--admin-listen", Addr(p.DistAdmin)),
	}
	if c.SyncInstances == 2 {
		// right after the first sync, so it starts before the nginx tiers
		i := slices.IndexFunc(specs, func(s spec) bool { return s.name == Sync })
		specs = slices.Insert(specs, i+1, t.syncSpec(Sync2, p.Sync2))
	}
	return specs
}

func (t *Topology) syncSpec(name string, port int) spec {
	c, p := t.cfg, t.cfg.Ports
	return spec{
		name: name, addr: Addr(port), healthWait: 30 * time.Second,
		env: []string{"DETAILPAGE_ADMIN_TOKEN=" + c.AdminToken},
		command: func() ([]string, error) {
			return []string{c.Binary, "sync", "--listen", Addr(port), "--redis", Addr(p.RedisMain),
				"--source", c.sourceURL(), "--kafka", Addr(p.Kafka), "--group", SyncGroup}, nil
		},
		healthy: httpOK(URL(port) + "/healthz"),
	}
}

func (t *Topology) appArgs() []string {
	c := t.cfg
	args := []string{"--replica", c.replicaForApps(), "--direct", Addr(c.Ports.Direct)}
	if c.AppL1TTL > 0 {
		args = append(args, "--l1-ttl", c.AppL1TTL.String())
	}
	if c.AppL2TTL > 0 {
		args = append(args, "--l2-ttl", c.AppL2TTL.String())
	}
	return args
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
