package topology

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func mustConfig(tb testing.TB, noSentinel bool) Config {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	ports, err := FreePorts()
	if err != nil {
		tb.Fatal(err)
	}
	return Config{
		Root: filepath.Join(filepath.Dir(file), "..", "..", ".."), VarDir: tb.TempDir(), Binary: "/bin/sh",
		Ports: ports, AdminToken: "t", NoSentinel: noSentinel,
	}
}

func argvOf(tb testing.TB, topo *Topology, name string) []string {
	tb.Helper()
	argv, err := topo.Component(name).spec.command()
	if err != nil {
		tb.Fatal(err)
	}
	return argv
}

// TestConsoleArgs: the console starts last, with the address of every
// service and node, the second sync instance's too when there is one.
func TestConsoleArgs(t *testing.T) {
	for _, n := range []int{1, 2} {
		cfg := mustConfig(t, true)
		cfg.SyncInstances = n
		cfg.ConsoleArgs = []string{"--poll", "500ms"}
		topo, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if last := topo.order[len(topo.order)-1]; last != Console {
			t.Errorf("sync instances %d: %s starts last, want the console", n, last)
		}
		p := cfg.Ports
		argv := strings.Join(argvOf(t, topo, Console), " ")
		for _, want := range []string{"console --listen " + Addr(p.Console), "source=" + URL(p.Source), "sync=" + URL(p.Sync),
			"direct=" + URL(p.Direct), "hot=" + URL(p.Hot), "one=" + URL(p.One),
			"--apps " + URL(p.App1) + "," + URL(p.App2), "--dist-admin " + URL(p.DistAdmin), "--hot " + URL(p.Hot), "--poll 500ms"} {
			if !strings.Contains(argv, want) {
				t.Errorf("sync instances %d: console runs %q: no %q", n, argv, want)
			}
		}
		if got := strings.Contains(argv, "sync2="+URL(p.Sync2)); got != (n == 2) {
			t.Errorf("sync instances %d: console runs %q: sync2 listed %v", n, argv, got)
		}
	}
}

func TestLayouts(t *testing.T) {
	small, err := New(mustConfig(t, true))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{RedisMain, RedisReplica, Broker, Source, Direct, Sync, Hot, One, App1, App2, Dist, Console}
	if !slices.Equal(small.order, want) {
		t.Errorf("small layout: %v, want %v", small.order, want)
	}
	if argv := strings.Join(argvOf(t, small, Sync), " "); strings.Contains(argv, "sentinel") {
		t.Errorf("small layout: sync runs %q", argv)
	}

	full, err := New(mustConfig(t, false))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(full.order, Order) {
		t.Errorf("default layout: %v, want %v", full.order, Order)
	}
	c := full.Config()
	sentinels := strings.Join(c.SentinelAddrs(), ",")
	for _, name := range []string{Sync, Direct} {
		argv := strings.Join(argvOf(t, full, name), " ")
		if !strings.Contains(argv, "--redis-sentinels "+sentinels+" --redis-master-name detailpage") {
			t.Errorf("%s runs %q: no Sentinels", name, argv)
		}
	}
	// Both nginx tiers read the replicas through the Sentinels (the dist
	// tier: the invalidation stream) and report to the hot-product service.
	for _, name := range []string{App1, Dist} {
		argv := strings.Join(argvOf(t, full, name), " ")
		if !strings.Contains(argv, "--sentinels "+sentinels+" --master-name detailpage") {
			t.Errorf("%s runs %q: no Sentinels", name, argv)
		}
		if !strings.Contains(argv, "--hot "+Addr(c.Ports.Hot)) {
			t.Errorf("%s runs %q: no --hot", name, argv)
		}
	}
	// Priorities: A's servers (main included) before B's; every server keeps an AOF.
	for name, prio := range map[string]string{RedisMain: "10", RedisReplica: "10", RedisB1: "100", RedisB2: "100"} {
		argv := argvOf(t, full, name)
		i := slices.Index(argv, "--replica-priority")
		if i < 0 || argv[i+1] != prio {
			t.Errorf("%s: %v: want --replica-priority %s", name, argv, prio)
		}
		if j := slices.Index(argv, "--appendonly"); j < 0 || argv[j+1] != "yes" || slices.Contains(argv[j+2:], "--appendonly") {
			t.Errorf("%s: %v: want one --appendonly yes", name, argv)
		}
	}
	// Before any failover main is Ports.RedisMain.
	if argv := argvOf(t, full, RedisMain); slices.Contains(argv, "--replicaof") {
		t.Errorf("redis-main: %v: a replica before any failover", argv)
	}
	if argv := argvOf(t, full, RedisB1); !strings.Contains(strings.Join(argv, " "), "--replicaof 127.0.0.1 "+strconv.Itoa(c.Ports.RedisMain)) {
		t.Errorf("redis-b1: %v: not a replica of main", argv)
	}

	// Each Sentinel writes its own config once and keeps what Sentinel rewrote.
	argv := argvOf(t, full, Sentinel2)
	conf := argv[1]
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"sentinel monitor detailpage 127.0.0.1 " + strconv.Itoa(c.Ports.RedisMain) + " 2", "port " + strconv.Itoa(c.Ports.Sentinel[1])} {
		if !strings.Contains(string(b), line+"\n") {
			t.Errorf("%s lacks %q:\n%s", conf, line, b)
		}
	}
	if err := os.WriteFile(conf, []byte("rewritten by sentinel\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	argvOf(t, full, Sentinel2)
	if b, _ := os.ReadFile(conf); string(b) != "rewritten by sentinel\n" {
		t.Errorf("a restart overwrote the Sentinel's own config: %q", b)
	}

	// After a failover (recorded by the Sentinels, highest config epoch
	// wins) every server restarts in its new role.
	writeConf := func(name string, port, epoch int) {
		if err := os.MkdirAll(filepath.Join(c.VarDir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf("sentinel monitor detailpage 127.0.0.1 %d 2\nsentinel config-epoch detailpage %d\n", port, epoch)
		if err := os.WriteFile(filepath.Join(c.VarDir, name, "sentinel.conf"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConf(Sentinel1, c.Ports.RedisB2, 1) // stale
	writeConf(Sentinel2, c.Ports.RedisReplica, 2)
	if argv := strings.Join(argvOf(t, full, RedisMain), " "); !strings.Contains(argv, "--replicaof 127.0.0.1 "+strconv.Itoa(c.Ports.RedisReplica)) {
		t.Errorf("redis-main after a failover to the replica: %s", argv)
	}
	if argv := argvOf(t, full, RedisReplica); slices.Contains(argv, "--replicaof") {
		t.Errorf("redis-replica, main since the failover: %v", argv)
	}
	// A topology started after the failover starts the current main first.
	again, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{RedisReplica, RedisMain, RedisB1, RedisB2}; !slices.Equal(again.order[:4], want) {
		t.Errorf("start order after a failover: %v, want %v first", again.order, want)
	}
}

func TestAppWarmTop(t *testing.T) {
	for top, want := range map[int]string{0: "", -1: "--warm-top 0", 3000: "--warm-top 3000"} {
		c := mustConfig(t, true)
		c.AppWarmTop = top
		topo, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		argv := strings.Join(argvOf(t, topo, App1), " ")
		if want == "" && strings.Contains(argv, "--warm-top") || want != "" && !strings.Contains(argv, want) {
			t.Errorf("AppWarmTop %d: app1 runs %q, want %q", top, argv, want)
		}
		if strings.Contains(strings.Join(argvOf(t, topo, Dist), " "), "--warm-top") {
			t.Errorf("AppWarmTop %d: the dist tier got --warm-top", top)
		}
	}
}
