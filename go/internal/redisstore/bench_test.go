package redisstore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/benchrow"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// benchProducts is how many products one round of BenchmarkPut writes, in
// Puts of benchBatch products (preheat's batch).
const (
	benchProducts = 1000
	benchBatch    = 100
)

// benchSizes are the sizes of a product's seven values, about those of the
// seeded catalog: the page document, the description, two mid-sized
// dimensions and three small ones.
var benchSizes = []int{4600, 1800, 1000, 900, 90, 80, 60}

// benchEntries are product id's seven values at version 1, of benchSizes.
func benchEntries(id int64) []redisstore.Entry {
	keys := productKeys(id)
	out := make([]redisstore.Entry, len(keys))
	for i, k := range keys {
		head := fmt.Sprintf(`{"version":1,"id":%d,"key":%q,"text":"`, id, k)
		fill := strings.Repeat("商品详情 detail ", benchSizes[i]/len("商品详情 detail ")+1)
		v := head + fill[:max(0, benchSizes[i]-len(head)-2)] + `"}`
		out[i] = redisstore.Entry{Key: k, Version: 1, Value: []byte(v)}
	}
	return out
}

// MustReplica starts a redis-server replicating main and waits until it is
// in sync: main's writes then cost it their replication as in production.
func MustReplica(tb testing.TB, main string) *redis.Client {
	tb.Helper()
	r := redis.NewClient(&redis.Options{Addr: testutil.MustRedis(tb)})
	tb.Cleanup(func() { r.Close() })
	host, port, _ := strings.Cut(main, ":")
	if err := r.SlaveOf(tb.Context(), host, port).Err(); err != nil {
		tb.Fatal(err)
	}
	testutil.Eventually(tb, 10*time.Second, func() error {
		info, err := r.Info(tb.Context(), "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica not in sync yet")
		}
		return nil
	})
	return r
}

// serverCPU is the server's used_cpu_user + used_cpu_sys (INFO cpu).
func serverCPU(ctx context.Context, rdb redis.UniversalClient) (time.Duration, error) {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("info cpu: %w", err)
	}
	var sum float64
	found := 0
	for _, line := range strings.Split(info, "\n") {
		name, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "used_cpu_user" && name != "used_cpu_sys") {
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return 0, fmt.Errorf("info cpu %s: %w", line, err)
		}
		sum += f
		found++
	}
	if found != 2 {
		return 0, fmt.Errorf("info cpu: no used_cpu_user and used_cpu_sys in %q", info)
	}
	return time.Duration(sum * float64(time.Second)), nil
}

// benchFence is the fence key of the fenced views (token 1), set again
// after every FLUSHALL.
const benchFence = "dp:preheat:{bench}:fence:0"

// putRound empties main, writes benchProducts products through st and
// returns the CPU main spent on it, until the replica acknowledged it all.
func putRound(b *testing.B, st *redisstore.Store, rdb redis.UniversalClient) time.Duration {
	b.Helper()
	ctx := b.Context()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	if err := rdb.Set(ctx, benchFence, "1", 0).Err(); err != nil {
		b.Fatal(err)
	}
	if err := rdb.Do(ctx, "WAIT", 1, 5000).Err(); err != nil {
		b.Fatal(err)
	}
	var batches [][]redisstore.Entry
	for start := int64(1); start <= benchProducts; start += benchBatch {
		var batch []redisstore.Entry
		for id := start; id < start+benchBatch; id++ {
			batch = append(batch, benchEntries(id)...)
		}
		batches = append(batches, batch)
	}
	before, err := serverCPU(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	for _, batch := range batches {
		if n, err := st.Put(ctx, batch...); err != nil || n != len(batch) {
			b.Fatalf("put: %d of %d written, %v", n, len(batch), err)
		}
	}
	if acked, err := rdb.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || acked != 1 {
		b.Fatalf("wait for the replica: %d, %v", acked, err)
	}
	after, err := serverCPU(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	return after - before
}

// BenchmarkPut measures Redis main's CPU per product written by Put: 1,000
// products of seven values of realistic sizes to empty keys, with a
// replica attached, once with one compare-and-set script call per value
// (Put before grouping) and once with one call per product (Put), the two
// alternating in every iteration; both fenced, as preheat writes, and
// both unfenced, as the sync service does. The CPU is main's used_cpu_user
// + used_cpu_sys (INFO cpu) over each round, until the replica
// acknowledged it. The row is preheat's figure (fenced).
func BenchmarkPut(b *testing.B) {
	addr := testutil.MustRedis(b)
	st, err := redisstore.Open(addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	MustReplica(b, addr)
	fenced, err := st.Fenced(benchFence, 1)
	if err != nil {
		b.Fatal(err)
	}
	rdb := st.Client()
	modes := []struct {
		name string
		st   *redisstore.Store
		cpu  time.Duration
	}{
		{name: "per-key", st: redisstore.PerKeyCalls(st)},
		{name: "grouped", st: st},
		{name: "per-key-fenced", st: redisstore.PerKeyCalls(fenced)},
		{name: "grouped-fenced", st: fenced},
	}
	// load the scripts outside the rounds measured
	for _, m := range modes {
		putRound(b, m.st, rdb)
	}
	rounds := 0
	for b.Loop() {
		for i := range modes {
			if rounds%2 == 1 { // the other order every other round
				i = len(modes) - 1 - i
			}
			modes[i].cpu += putRound(b, modes[i].st, rdb)
		}
		rounds++
	}
	per := make(map[string]float64, len(modes))
	for _, m := range modes {
		per[m.name] = float64(m.cpu.Microseconds()) / float64(rounds*benchProducts)
		b.ReportMetric(per[m.name], "µs-cpu/product-"+m.name)
	}
	b.ReportMetric(per["grouped"]/per["per-key"], "grouped/per-key")
	b.ReportMetric(per["grouped-fenced"]/per["per-key-fenced"], "grouped/per-key-fenced")
	benchrow.Record(b, benchrow.Row{
		What: "redis main CPU per product written, grouped / per key",
		Figure: fmt.Sprintf("%s fenced as preheat (%.1f / %.1f µs), %s unfenced (%.1f / %.1f µs); %d rounds of %d products",
			benchrow.Ratio(per["grouped-fenced"], per["per-key-fenced"]), per["grouped-fenced"], per["per-key-fenced"],
			benchrow.Ratio(per["grouped"], per["per-key"]), per["grouped"], per["per-key"], rounds, benchProducts),
	})
}
