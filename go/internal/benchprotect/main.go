// Command benchprotect is the protection scenario of `make bench`: it
// starts a topology of its own (free ports, temp dir) once with every
// cache protection of the direct-data service on and once with them off,
// runs three attacks against each and prints the source lookups per 1,000
// page requests:
//
//   - penetration: requests for random ids that do not exist, through the
//     dist tier (each id twice);
//   - breakdown: one hot id with both app nodes down (the dist tier sends
//     pages to the direct-data service) while its Redis value keeps
//     expiring (deleted every second);
//   - avalanche: Redis main and replica stopped under Zipf traffic through
//     the dist tier.
//
// "off" runs the direct-data service with --bloom=false --singleflight=false
// --xfetch=false --stale=false --rebuild-concurrency=0; the app tier's own
// defences (negative cache, per-node lock, stale copies) stay on in both.
//
//	go run ./go/internal/benchprotect --bin bin/detailpage
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/loadgen"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/topology"
)

const token = "bench-admin-token"

type options struct {
	bin, root string
	products  int
	rate      int
	duration  time.Duration
	limit     int
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/detailpage", "the detailpage binary")
	flag.StringVar(&o.root, "root", ".", "repository root")
	flag.IntVar(&o.products, "products", 10_000, "catalog size (the Zipf traffic spans all of it)")
	flag.IntVar(&o.rate, "rate", 1000, "page requests per second of each attack")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each attack")
	flag.IntVar(&o.limit, "rebuild-concurrency", 4, "the direct-data service's rebuild limit with protections on")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "benchprotect:", err)
		os.Exit(1)
	}
}

type outcome struct {
	requests, lookups, fails int
	p99                      time.Duration
}

func (o outcome) perThousand() float64 {
	return 1000 * float64(o.lookups) / float64(max(o.requests, 1))
}

var attacks = []string{"penetration", "breakdown", "avalanche"}

func run(o options) error {
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	o.bin = bin
	settings := []struct {
		name string
		args []string
	}{
		{"on", []string{"--rebuild-concurrency=" + strconv.Itoa(o.limit)}},
		{"off", []string{"--bloom=false", "--singleflight=false", "--xfetch=false", "--stale=false", "--rebuild-concurrency=0"}},
	}
	results := map[string]map[string]outcome{}
	for _, s := range settings {
		fmt.Printf("\nbench protection: defences %s (direct %v)\n", s.name, s.args)
		res, err := runSetting(o, s.args)
		if err != nil {
			return fmt.Errorf("defences %s: %w", s.name, err)
		}
		results[s.name] = res
	}
	fmt.Printf("\nbench protection: source lookups per 1,000 page requests (%d req/s for %s per attack; 5xx and p99 in brackets)\n", o.rate, o.duration)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "attack\tdefences on\tdefences off\t")
	for _, a := range attacks {
		on, off := results["on"][a], results["off"][a]
		fmt.Fprintf(w, "%s\t%.1f  [%d 5xx, p99 %s]\t%.1f  [%d 5xx, p99 %s]\t\n", a,
			on.perThousand(), on.fails, on.p99.Round(100*time.Microsecond), off.perThousand(), off.fails, off.p99.Round(100*time.Microsecond))
	}
	return w.Flush()
}

func runSetting(o options, directArgs []string) (map[string]outcome, error) {
	dir, err := os.MkdirTemp("", "detailpage-benchprotect-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ports, err := topology.FreePorts()
	if err != nil {
		return nil, err
	}
	topo, err := topology.New(topology.Config{
		Root: o.root, VarDir: dir, Binary: o.bin, Ports: ports, AdminToken: token,
		SeedProducts: o.products, SeedShops: 100, AppL1TTL: 2 * time.Second, AppL2TTL: 2 * time.Second,
		DirectArgs: directArgs,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fmt.Printf("  starting a topology of %d products in %s\n", o.products, dir)
	if err := topo.Start(ctx); err != nil {
		return nil, err
	}
	defer topo.Stop()
	if err := topo.WaitWarm(ctx, 4*time.Minute); err != nil {
		return nil, err
	}
	if err := waitBloom(ctx, topo, directArgs); err != nil {
		return nil, err
	}
	b := &bench{o: o, topo: topo, client: loadgen.NewClient()}
	out := map[string]outcome{}
	for _, a := range attacks {
		var r outcome
		switch a {
		case "penetration":
			r, err = b.penetration()
		case "breakdown":
			r, err = b.breakdown(ctx)
		case "avalanche":
			r, err = b.avalanche(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a, err)
		}
		fmt.Printf("  %-12s %6d requests, %6d source lookups (%.1f per 1,000), %d 5xx, p99 %s\n", a, r.requests, r.lookups, r.perThousand(), r.fails, r.p99.Round(100*time.Microsecond))
		out[a] = r
	}
	return out, nil
}

type bench struct {
	o      options
	topo   *topology.Topology
	client *http.Client
}

func (b *bench) pageURL(port int) func(int64) string {
	base := topology.URL(port) + "/item/"
	return func(id int64) string { return base + strconv.FormatInt(id, 10) + ".html" }
}

// penetration: random ids that do not exist, each asked twice.
func (b *bench) penetration() (outcome, error) {
	n := int(float64(b.o.rate) * b.o.duration.Seconds())
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]int64, max(n/2, 1))
	for i := range ids {
		ids[i] = 1_000_000_000 + rng.Int64N(1_000_000_000_000)
	}
	var mu sync.Mutex
	i := 0
	next := func() int64 {
		mu.Lock()
		defer mu.Unlock()
		i++
		return ids[(i-1)%len(ids)]
	}
	return b.attack(b.pageURL(b.topo.Config().Ports.Dist), next)
}

// breakdown: both app nodes down, one hot id whose Redis value is deleted
// every second.
func (b *bench) breakdown(ctx context.Context) (outcome, error) {
	for _, n := range []string{topology.App1, topology.App2} {
		if err := b.topo.Component(n).Kill(); err != nil {
			return outcome{}, err
		}
	}
	defer func() {
		for _, n := range []string{topology.App1, topology.App2} {
			b.topo.Component(n).Start(ctx)
		}
	}()
	const hot = 77
	rdb := redis.NewClient(&redis.Options{Addr: topology.Addr(b.topo.Config().Ports.RedisMain)})
	defer rdb.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			rdb.Del(ctx, redisstore.ItemKey(hot))
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()
	return b.attack(b.pageURL(b.topo.Config().Ports.Dist), func() int64 { return hot })
}

// avalanche: Zipf traffic, Redis main and replica stopped after a warm-up.
func (b *bench) avalanche(ctx context.Context) (outcome, error) {
	next := loadgen.Zipf(3, b.o.products)
	url := b.pageURL(b.topo.Config().Ports.Dist)
	warm := b.o.duration / 3
	if _, err := b.load(url, next, warm); err != nil {
		return outcome{}, err
	}
	for _, n := range []string{topology.RedisReplica, topology.RedisMain} {
		if err := b.topo.Component(n).Stop(); err != nil {
			return outcome{}, err
		}
	}
	return b.attack(url, next)
}

// attack resets the source's stats, sends the load and counts lookups.
func (b *bench) attack(url func(int64) string, next func() int64) (outcome, error) {
	if _, err := b.stats(http.MethodDelete); err != nil {
		return outcome{}, err
	}
	rs, err := b.load(url, next, b.o.duration)
	if err != nil {
		return outcome{}, err
	}
	st, err := b.stats(http.MethodGet)
	if err != nil {
		return outcome{}, err
	}
	o := outcome{requests: len(rs)}
	for _, s := range st {
		o.lookups += int(s.Lookups)
	}
	lat := make([]time.Duration, 0, len(rs))
	for _, r := range rs {
		if r.Status == 0 || r.Status >= 500 {
			o.fails++
		}
		lat = append(lat, r.Latency)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		o.p99 = lat[(len(lat)-1)*99/100]
	}
	return o, nil
}

// load sends o.rate requests a second for d, open loop.
func (b *bench) load(url func(int64) string, next func() int64, d time.Duration) ([]loadgen.Result, error) {
	return loadgen.Run(b.client, b.o.rate, d, url, next), nil
}

type serviceStats struct {
	Lookups int64 `json:"lookups"`
}

func (b *bench) stats(method string) (map[string]serviceStats, error) {
	req, _ := http.NewRequest(method, topology.URL(b.topo.Config().Ports.Source)+"/_admin/stats", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Services map[string]serviceStats `json:"services"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("source stats: %w", err)
	}
	return body.Services, nil
}

// waitBloom waits for the direct-data service's Bloom filter, when on.
func waitBloom(ctx context.Context, topo *topology.Topology, directArgs []string) error {
	if slices.Contains(directArgs, "--bloom=false") {
		return nil
	}
	url := topology.URL(topo.Config().Ports.Direct) + "/metrics"
	for ctx.Err() == nil {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if containsLine(string(body), "detailpage_direct_bloom_ready 1") {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
	return ctx.Err()
}

func containsLine(text, line string) bool {
	for l := range strings.SplitSeq(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}
