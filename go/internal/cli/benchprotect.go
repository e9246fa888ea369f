package cli

// `detailpage bench-protect` is the protection scenario of `make bench`: it
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
// The traffic is open loop (go/internal/loadgen): latency is measured from
// each request's scheduled time and requests that could not leave on time
// are counted.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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

	"github.com/detailpage/detailpage/go/internal/benchrow"
	"github.com/detailpage/detailpage/go/internal/loadgen"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/topology"
)

const benchToken = "bench-admin-token"

type benchOptions struct {
	bin, root string
	products  int
	rate      int
	duration  time.Duration
	limit     int
}

func runBenchProtect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	f := newFlags("bench-protect", stderr)
	bin := f.String("bin", "DETAILPAGE_BENCH_BIN", self, "the detailpage binary the topologies run")
	root := f.String("root", "DETAILPAGE_ROOT", ".", "repository root holding lua/, nginx/ and templates/")
	products := f.Int("products", "DETAILPAGE_BENCH_PRODUCTS", 10_000, "catalog size (the Zipf traffic spans all of it)")
	rate := f.Int("rate", "DETAILPAGE_BENCH_RATE", 1000, "page requests per second of each attack (open loop)")
	duration := f.Duration("duration", "DETAILPAGE_BENCH_DURATION", 10*time.Second, "length of each attack")
	limit := f.Int("rebuild-concurrency", "DETAILPAGE_BENCH_REBUILD_CONCURRENCY", 4, "the direct-data service's rebuild limit with protections on")
	if err := f.parse(args); err != nil {
		return err
	}
	if *rate <= 0 || *duration <= 0 || *products < 2 {
		fmt.Fprintln(stderr, "bench-protect: --rate and --duration must be positive, --products at least 2")
		return errUsage
	}
	o := benchOptions{bin: *bin, root: *root, products: *products, rate: *rate, duration: *duration, limit: *limit}
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return err
	}
	return benchProtect(ctx, o, stdout)
}

type outcome struct {
	requests, lookups, fails, late int
	p99                            time.Duration
}

func (o outcome) perThousand() float64 {
	return 1000 * float64(o.lookups) / float64(max(o.requests, 1))
}

func (o outcome) String() string {
	return fmt.Sprintf("%d 5xx, p99 %s, %d late", o.fails, o.p99.Round(100*time.Microsecond), o.late)
}

var attacks = []string{"penetration", "breakdown", "avalanche"}

func benchProtect(ctx context.Context, o benchOptions, stdout io.Writer) error {
	settings := []struct {
		name string
		args []string
	}{
		{"on", []string{"--rebuild-concurrency=" + strconv.Itoa(o.limit)}},
		{"off", []string{"--bloom=false", "--singleflight=false", "--xfetch=false", "--stale=false", "--rebuild-concurrency=0"}},
	}
	results := map[string]map[string]outcome{}
	for _, s := range settings {
		fmt.Fprintf(stdout, "\nbench protection: defences %s (direct %v)\n", s.name, s.args)
		res, err := runSetting(ctx, o, s.args, stdout)
		if err != nil {
			return fmt.Errorf("bench-protect: defences %s: %w", s.name, err)
		}
		results[s.name] = res
	}
	fmt.Fprintf(stdout, "\nbench protection: source lookups per 1,000 page requests (%d req/s open loop for %s per attack; 5xx, p99 from scheduled time and requests sent late in brackets)\n", o.rate, o.duration)
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "attack\tdefences on\tdefences off\t")
	for _, a := range attacks {
		on, off := results["on"][a], results["off"][a]
		fmt.Fprintf(w, "%s\t%.1f  [%s]\t%.1f  [%s]\t\n", a, on.perThousand(), on, off.perThousand(), off)
		row := benchrow.Row{What: "cache attack, " + a + ": source lookups per 1,000 requests",
			Figure: fmt.Sprintf("on %.1f (%d 5xx), off %.1f (%d 5xx)", on.perThousand(), on.fails, off.perThousand(), off.fails)}
		if err := benchrow.Append(os.Getenv(benchrow.EnvFile), row); err != nil {
			return err
		}
	}
	return w.Flush()
}

func runSetting(ctx context.Context, o benchOptions, directArgs []string, stdout io.Writer) (_ map[string]outcome, err error) {
	dir, err := os.MkdirTemp("", "detailpage-benchprotect-")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	ports, err := topology.FreePorts()
	if err != nil {
		return nil, err
	}
	topo, err := topology.New(topology.Config{
		Root: o.root, VarDir: dir, Binary: o.bin, Ports: ports, AdminToken: benchToken,
		SeedProducts: o.products, SeedShops: 100, AppL1TTL: 2 * time.Second, AppL2TTL: 2 * time.Second,
		DirectArgs: directArgs,
		// the avalanche stops Redis main and replica: no failover to B
		NoSentinel: true,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute+6*o.duration)
	defer cancel()
	fmt.Fprintf(stdout, "  starting a topology of %d products in %s\n", o.products, dir)
	if err := topo.Start(ctx); err != nil {
		return nil, err
	}
	defer func() {
		if serr := topo.Stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop the topology: %w", serr))
		}
	}()
	if err := topo.WaitWarm(ctx, 4*time.Minute); err != nil {
		return nil, err
	}
	client := loadgen.NewClient()
	defer client.CloseIdleConnections()
	b := &bench{o: o, topo: topo, client: client}
	if err := b.waitBloom(ctx, directArgs); err != nil {
		return nil, err
	}
	out := map[string]outcome{}
	for _, a := range attacks {
		var r outcome
		switch a {
		case "penetration":
			r, err = b.penetration(ctx)
		case "breakdown":
			r, err = b.breakdown(ctx)
		case "avalanche":
			r, err = b.avalanche(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a, err)
		}
		fmt.Fprintf(stdout, "  %-12s %6d requests, %6d source lookups (%.1f per 1,000), %s\n", a, r.requests, r.lookups, r.perThousand(), r)
		out[a] = r
	}
	return out, nil
}

type bench struct {
	o      benchOptions
	topo   *topology.Topology
	client *http.Client
}

func (b *bench) pageURL(port int) func(int64) string {
	base := topology.URL(port) + "/item/"
	return func(id int64) string { return base + strconv.FormatInt(id, 10) + ".html" }
}

// penetration: random ids that do not exist, each asked twice.
func (b *bench) penetration(ctx context.Context) (outcome, error) {
	n := int(float64(b.o.rate) * b.o.duration.Seconds())
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]int64, max(n/2, 1))
	for i := range ids {
		ids[i] = 1_000_000_000 + rng.Int64N(1_000_000_000_000)
	}
	i := 0
	next := func() int64 { // loadgen.Run draws ids in order, from one goroutine
		i++
		return ids[(i-1)%len(ids)]
	}
	return b.attack(ctx, b.pageURL(b.topo.Config().Ports.Dist), next)
}

// breakdown: both app nodes down, one hot id whose Redis value is deleted
// every second.
func (b *bench) breakdown(ctx context.Context) (_ outcome, err error) {
	for _, n := range []string{topology.App1, topology.App2} {
		if err := b.topo.Component(n).Kill(); err != nil {
			return outcome{}, err
		}
	}
	defer func() {
		for _, n := range []string{topology.App1, topology.App2} {
			if serr := b.topo.Component(n).Start(ctx); serr != nil {
				err = errors.Join(err, fmt.Errorf("start %s again: %w", n, serr))
			}
		}
	}()
	const hot = 77
	rdb := redis.NewClient(&redis.Options{Addr: topology.Addr(b.topo.Config().Ports.RedisMain)})
	defer rdb.Close()
	expire, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var delErr error
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			if err := rdb.Del(expire, redisstore.ItemKey(hot)).Err(); err != nil && expire.Err() == nil {
				delErr = fmt.Errorf("delete the hot key: %w", err)
				return
			}
			select {
			case <-expire.Done():
				return
			case <-t.C:
			}
		}
	})
	r, err := b.attack(ctx, b.pageURL(b.topo.Config().Ports.Dist), func() int64 { return hot })
	stop()
	wg.Wait()
	return r, errors.Join(err, delErr)
}

// avalanche: Zipf traffic, Redis main and replica stopped after a warm-up.
func (b *bench) avalanche(ctx context.Context) (outcome, error) {
	next := loadgen.Zipf(3, b.o.products)
	url := b.pageURL(b.topo.Config().Ports.Dist)
	loadgen.Run(ctx, b.client, b.o.rate, b.o.duration/3, url, next) // warm-up: its figures do not count
	for _, n := range []string{topology.RedisReplica, topology.RedisMain} {
		if err := b.topo.Component(n).Stop(); err != nil {
			return outcome{}, err
		}
	}
	return b.attack(ctx, url, next)
}

// attack resets the source's stats, sends the load and counts lookups.
func (b *bench) attack(ctx context.Context, url func(int64) string, next func() int64) (outcome, error) {
	if _, err := b.stats(ctx, http.MethodDelete); err != nil {
		return outcome{}, err
	}
	rep := loadgen.Run(ctx, b.client, b.o.rate, b.o.duration, url, next)
	if err := ctx.Err(); err != nil {
		return outcome{}, err
	}
	st, err := b.stats(ctx, http.MethodGet)
	if err != nil {
		return outcome{}, err
	}
	o := outcome{requests: len(rep.Results), late: rep.Late(), p99: loadgen.Percentile(rep.Latencies(), 0.99)}
	for _, s := range st {
		o.lookups += int(s.Lookups)
	}
	for _, r := range rep.Results {
		if r.Status == 0 || r.Status >= 500 {
			o.fails++
		}
	}
	return o, nil
}

type benchServiceStats struct {
	Lookups int64 `json:"lookups"`
}

// stats is GET (or, resetting, DELETE) /_admin/stats of the source service.
func (b *bench) stats(ctx context.Context, method string) (map[string]benchServiceStats, error) {
	req, err := http.NewRequestWithContext(ctx, method, topology.URL(b.topo.Config().Ports.Source)+"/_admin/stats", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+benchToken)
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("source stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("source stats: %s", resp.Status)
	}
	var body struct {
		Services map[string]benchServiceStats `json:"services"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("source stats: %w", err)
	}
	return body.Services, nil
}

// waitBloom waits for the direct-data service's Bloom filter, when on.
func (b *bench) waitBloom(ctx context.Context, directArgs []string) error {
	if slices.Contains(directArgs, "--bloom=false") {
		return nil
	}
	url := topology.URL(b.topo.Config().Ports.Direct) + "/metrics"
	var last error
	for {
		ready, err := b.bloomReady(ctx, url)
		if ready {
			return nil
		}
		last = err
		t := time.NewTimer(200 * time.Millisecond) // poll interval
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("the Bloom filter is not ready: %w (last: %v)", ctx.Err(), last)
		case <-t.C:
		}
	}
}

func (b *bench) bloomReady(ctx context.Context, url string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "detailpage_direct_bloom_ready 1" {
			return true, nil
		}
	}
	return false, sc.Err()
}
