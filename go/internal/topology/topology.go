// Package topology is the one definition of a detailpage deployment on one
// machine: which components there are, their ports, config files, data
// directories, start order, health checks and how each stops. `detailpage
// up` (behind `make run`) and the end-to-end tests both use it; the tests
// start it on free ports in a temp dir and stop, kill, pause and restart
// single components. Every started component is supervised: one that exits
// unasked is restarted with a backoff (see Component and RestartPolicy).
package topology

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Component names, in start order.
const (
	RedisMain    = "redis-main"
	RedisReplica = "redis-replica"
	RedisB1      = "redis-b1" // data centre B's replicas (not with Config.NoSentinel)
	RedisB2      = "redis-b2"
	Sentinel1    = "sentinel1" // the three Sentinels (not with Config.NoSentinel)
	Sentinel2    = "sentinel2"
	Sentinel3    = "sentinel3"
	Broker       = "broker"
	Source       = "source"
	Direct       = "direct"
	Sync         = "sync"
	Sync2        = "sync2" // a second sync instance, when Config.SyncInstances is 2
	Hot          = "hot"   // the hot-product service (app nodes and the dist tier report to it)
	One          = "one"   // the realtime service (OneServer): price, stock, promotion, shipping
	App1         = "app1"
	App2         = "app2"
	Dist         = "dist"
	Console      = "console" // the operator console, started last (it reads every other component)
)

// Order is the start order of the default topology; Stop goes the other way.
var Order = []string{RedisMain, RedisReplica, RedisB1, RedisB2, Sentinel1, Sentinel2, Sentinel3, Broker, Source, Direct, Sync, Hot, One, App1, App2, Dist, Console}

// MasterName is the name the Sentinels know Redis main by.
const MasterName = "detailpage"

// Sentinels are the names of the Sentinel components.
var Sentinels = []string{Sentinel1, Sentinel2, Sentinel3}

// RedisNodes are the Redis servers of the failover layout: data centre A's
// main and replica, then data centre B's two replicas.
var RedisNodes = []string{RedisMain, RedisReplica, RedisB1, RedisB2}

// Ports are the loopback ports of every component.
type Ports struct {
	Dist, App1, App2        int
	DistAdmin               int // the dist tier's internal admin port
	RedisMain, RedisReplica int
	RedisB1, RedisB2        int // data centre B's replicas
	Sentinel                [3]int
	Kafka                   int
	Source, Sync, Direct    int
	Sync2                   int // only used with two sync instances
	Hot                     int // the hot-product service
	One                     int // the realtime service (OneServer)
	Console                 int // the operator console
}

// DefaultPorts are the ports of the contract (docs/ARCHITECTURE).
func DefaultPorts() Ports {
	return Ports{Dist: 8080, DistAdmin: 8070, App1: 8081, App2: 8082, RedisMain: 6380, RedisReplica: 6381,
		RedisB1: 6382, RedisB2: 6383, Sentinel: [3]int{26379, 26380, 26381}, Kafka: 9092, Source: 9101, Sync: 9102, Direct: 9103, Hot: 9104, One: 9105, Sync2: 9112, Console: 9100}
}

// FreePorts picks unused loopback ports (for tests).
func FreePorts() (Ports, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var errs []error
	next := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			errs = append(errs, err)
			return 0
		}
		ls = append(ls, l)
		return l.Addr().(*net.TCPAddr).Port
	}
	p := Ports{Dist: next(), DistAdmin: next(), App1: next(), App2: next(), RedisMain: next(), RedisReplica: next(),
		RedisB1: next(), RedisB2: next(), Sentinel: [3]int{next(), next(), next()}, Kafka: next(), Source: next(), Sync: next(), Direct: next(), Sync2: next(), Hot: next(), One: next(), Console: next()}
	if len(errs) > 0 {
		return Ports{}, fmt.Errorf("topology: no free loopback ports: %w", errors.Join(errs...))
	}
	return p, nil
}

// Config describes one deployment.
type Config struct {
	Root          string // repository root: lua/, nginx/, templates/
	VarDir        string // data and logs
	Binary        string // the detailpage binary
	Ports         Ports
	AdminToken    string
	Restart       RestartPolicy // how crashed components are restarted (zero: DefaultRestartPolicy)
	NoRestart     []string      // components the supervisor never restarts (a test kills them for good)
	SeedProducts  int
	SeedShops     int
	Progress      io.Writer     // start and stop progress for humans; nil: silent
	Log           *slog.Logger  // the supervisor's structured log (exits, restarts); nil: slog.Default()
	AppL1TTL      time.Duration // app nodes' L1 TTL (0: the default in lua/detailpage/app.lua)
	AppL2TTL      time.Duration // app nodes' L2 TTL (0: the default in lua/detailpage/app.lua)
	AppWarmTop    int           // app nodes' --warm-top: the hottest pages loaded at start (0: the flag's default; -1: no warm-up)
	SyncInstances int           // 1 (default) or 2 sync services in one consumer group
	DirectArgs    []string      // extra flags of the direct-data service (e.g. --bloom=false)
	HotArgs       []string      // extra flags of the hot-product service (e.g. --floor 20 --cooldown 2s)
	OneArgs       []string      // extra flags of the realtime service (e.g. --fresh 500ms)
	ConsoleArgs   []string      // extra flags of the operator console (e.g. --poll 500ms)
	// NoSentinel keeps the small layout: Redis main and one replica, no
	// Sentinel, services and app nodes on fixed addresses. The default is
	// seed 004's two data centres: main and replica (A), two standby
	// replicas (B), three Sentinels, failover on losing main.
	NoSentinel bool
	Via        Via // links routed through another address (zero: every link direct)
}

// SentinelAddrs are the Sentinels' addresses (none with NoSentinel).
func (c Config) SentinelAddrs() []string {
	if c.NoSentinel {
		return nil
	}
	out := make([]string, len(c.Ports.Sentinel))
	for i, p := range c.Ports.Sentinel {
		out[i] = Addr(p)
	}
	return out
}

// Via points chosen links between components at another address, such as
// a fault-injecting proxy a test puts in front of the target; "" keeps a
// link direct. The target itself still serves on its own port.
type Via struct {
	Replica string // where the app nodes read the Redis replica
	Source  string // where sync and direct call the source API
}

// replicaForApps is the address the app nodes read the replica at.
func (c Config) replicaForApps() string {
	if c.Via.Replica != "" {
		return c.Via.Replica
	}
	return Addr(c.Ports.RedisReplica)
}

// sourceURL is the source API's URL for sync and direct.
func (c Config) sourceURL() string {
	if c.Via.Source != "" {
		return "http://" + c.Via.Source
	}
	return URL(c.Ports.Source)
}

// Addr is a loopback address.
func Addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// URL is a loopback http URL.
func URL(port int) string { return "http://" + Addr(port) }

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	for _, dir := range []string{"lua", "nginx", "templates"} {
		if fi, err := os.Stat(filepath.Join(c.Root, dir)); err != nil || !fi.IsDir() {
			return fmt.Errorf("topology: %s is not a detailpage checkout (no %s/)", c.Root, dir)
		}
	}
	if c.VarDir == "" {
		return errors.New("topology: var dir required")
	}
	if _, err := os.Stat(c.Binary); err != nil {
		return fmt.Errorf("topology: binary: %w", err)
	}
	if c.AdminToken == "" {
		return errors.New("topology: admin token required")
	}
	if c.SeedProducts == 0 {
		c.SeedProducts = 10_000
	}
	if c.SeedShops == 0 {
		c.SeedShops = 250
	}
	if c.SyncInstances == 0 {
		c.SyncInstances = 1
	}
	if c.SyncInstances < 1 || c.SyncInstances > 2 {
		return errors.New("topology: sync instances: want 1 or 2")
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	var err error
	if c.Root, err = filepath.Abs(c.Root); err != nil {
		return err
	}
	if c.VarDir, err = filepath.Abs(c.VarDir); err != nil {
		return err
	}
	return nil
}

// Topology is a set of components that start and stop together.
type Topology struct {
	cfg    Config
	comps  map[string]*Component
	order  []string
	events chan Event // news from the components' supervisors
}

// New prepares the components of cfg; nothing runs yet.
func New(cfg Config) (*Topology, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Topology{cfg: cfg, comps: map[string]*Component{}}
	specs := t.specs()
	t.events = make(chan Event, 16*len(specs))
	for _, spec := range specs {
		t.comps[spec.name] = newComponent(spec, cfg, t.events)
		t.order = append(t.order, spec.name)
	}
	for _, name := range cfg.NoRestart {
		if _, ok := t.comps[name]; !ok {
			return nil, fmt.Errorf("topology: no restart: unknown component %q", name)
		}
	}
	return t, nil
}

// Config returns the configuration (with defaults filled in).
func (t *Topology) Config() Config { return t.cfg }

// Component returns a component by name; it panics on an unknown name
// (a caller bug).
func (t *Topology) Component(name string) *Component {
	c, ok := t.comps[name]
	if !ok {
		panic("topology: unknown component " + name)
	}
	return c
}

// Start starts every component in order, each after the previous is
// healthy. On failure it stops what it started.
func (t *Topology) Start(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Join(t.cfg.VarDir, "logs"), 0o755); err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	for _, name := range t.order {
		c := t.comps[name]
		fmt.Fprintf(t.cfg.Progress, "  starting %-14s", name)
		start := time.Now()
		if err := c.Start(ctx); err != nil {
			fmt.Fprintf(t.cfg.Progress, "failed\n")
			if serr := t.Stop(); serr != nil {
				return errors.Join(err, fmt.Errorf("topology: stopping after the failed start: %w", serr))
			}
			return err
		}
		fmt.Fprintf(t.cfg.Progress, "ok (%s, %s)\n", c.Addr(), time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// Stop stops every component in reverse order, a running one as well as
// one its supervisor is about to restart: when Stop returns, no process and
// no supervisor of the topology is left.
func (t *Topology) Stop() error {
	var errs []error
	for i := len(t.order) - 1; i >= 0; i-- {
		c := t.comps[t.order[i]]
		if c.Running() {
			fmt.Fprintf(t.cfg.Progress, "  stopping %s\n", c.Name())
		}
		if err := c.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Events returns the channel of the supervisors' news: a component that
// exited unasked (and the backoff before its restart), one restarted and
// healthy again, one left down in a crash loop. It is the same channel on
// every call and starts nothing; news that finds it full is dropped (the
// log has it too).
func (t *Topology) Events() <-chan Event { return t.events }

// Statuses returns every component's state, in start order.
func (t *Topology) Statuses() []Status {
	st := make([]Status, 0, len(t.order))
	for _, name := range t.order {
		st = append(st, t.comps[name].Status())
	}
	return st
}

// LoadOrCreateToken returns the admin token kept in varDir/admin-token,
// creating a random one on first use.
func LoadOrCreateToken(varDir string) (string, error) {
	path := filepath.Join(varDir, "admin-token")
	if b, err := os.ReadFile(path); err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
	}
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(buf)
	if err := os.MkdirAll(varDir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok, nil
}
