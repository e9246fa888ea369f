package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/kafka"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/topology"
)

const syncProducts = 1000

// The write path under faults: one topology with two sync instances in one
// consumer group, a 1,000-product catalog.
func TestSyncPipeline(t *testing.T) {
	topo := MustTopology(t, topology.Config{SeedProducts: syncProducts, SeedShops: 50, SyncInstances: 2})
	ed := &editor{t: topo}

	t.Run("poison messages go to the DLQ with a reason", func(t *testing.T) { testPoison(t, topo, ed) })
	t.Run("edits and a refresh survive a SIGKILLed sync instance", func(t *testing.T) { testKilledInstance(t, topo, ed) })
	t.Run("edits survive Redis main down for 20 s", func(t *testing.T) {
		testOutage(t, topo, ed, topology.RedisMain, 20*time.Second)
	})
	t.Run("edits survive the broker down for 20 s", func(t *testing.T) {
		testOutage(t, topo, ed, topology.Broker, 20*time.Second)
	})
	t.Run("a rebuild racing edits never leaves an older version", func(t *testing.T) { testRebuildRace(t, topo, ed) })
}

// editor makes random edits through the source API and remembers which
// products it touched.
type editor struct {
	t       *topology.Topology
	mu      sync.Mutex
	touched map[int64]bool
	n       atomic.Int64
}

// edit changes one dimension of product id; the source must accept it
// (200) whatever is down below it, anything else is an error. Safe in any
// goroutine.
func (e *editor) edit(id int64, r *rand.Rand) error {
	var path, body string
	switch r.IntN(3) {
	case 0:
		path, body = "stock", fmt.Sprintf(`{"available":%d}`, r.IntN(5000))
	case 1:
		path, body = "prices", fmt.Sprintf(`{"amount":"%d.%02d","list":"","currency":"CNY"}`, 1+r.IntN(9999), r.IntN(100))
	default:
		p, err := getProduct(e.t, id)
		if err != nil {
			return fmt.Errorf("edit %d: %w", id, err)
		}
		p.Name = fmt.Sprintf("编辑 Edited %d-%d", id, e.n.Add(1))
		p.ID, p.Version = 0, 0
		b, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("edit %d: %w", id, err)
		}
		path, body = "products", string(b)
	}
	status, resp, err := putSource(e.t, fmt.Sprintf("/api/%s/%d", path, id), []byte(body))
	if err != nil {
		return fmt.Errorf("edit %d: %w", id, err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("edit %d: PUT %s: status %d %.200s", id, path, status, resp)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.touched == nil {
		e.touched = map[int64]bool{}
	}
	e.touched[id] = true
	return nil
}

// run makes n edits over random products from workers goroutines, calling
// at(i) before edit i (for faults half way) in the worker's goroutine: at
// reports with tb.Errorf, never tb.Fatal.
func (e *editor) run(tb testing.TB, n, workers int, at func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if at != nil {
					at(i)
				}
				if err := e.edit(1+r.Int64N(syncProducts), r); err != nil {
					tb.Errorf("edit %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// MustCaughtUp waits until the outbox is empty and the sync service has
// committed every event, retries included.
func MustCaughtUp(tb testing.TB, topo *topology.Topology, limit time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit+10*time.Second)
	defer cancel()
	if err := topo.WaitWarm(ctx, limit); err != nil {
		tb.Fatal(err)
	}
}

// MustMatchSource checks that the page document of every product in ids
// equals the source: content of each dimension and the version.
func MustMatchSource(tb testing.TB, topo *topology.Topology, ids []int64) {
	tb.Helper()
	rdb := redisClient(tb, topo.Config().Ports.RedisMain)
	mismatches := 0
	for start := 0; start < len(ids); start += 100 {
		chunk := ids[start:min(start+100, len(ids))]
		bases := batchGet[catalog.Product](tb, topo, "products", chunk)
		prices := batchGet[catalog.Price](tb, topo, "prices", chunk)
		stocks := batchGet[catalog.Stock](tb, topo, "stock", chunk)
		descs := batchGet[catalog.Description](tb, topo, "descriptions", chunk)
		specs := batchGet[catalog.Spec](tb, topo, "specs", chunk)
		recs := batchGet[catalog.Recommendations](tb, topo, "recommendations", chunk)
		for _, id := range chunk {
			raw, err := rdb.Get(context.Background(), redisstore.ItemKey(id)).Bytes()
			if err != nil {
				tb.Errorf("product %d: no page document in Redis main: %v", id, err)
				mismatches++
				continue
			}
			var doc catalog.PageDoc
			if err := json.Unmarshal(raw, &doc); err != nil {
				tb.Fatalf("product %d: %v", id, err)
			}
			want := bases[id].Version + prices[id].Version + stocks[id].Version + descs[id].Version + specs[id].Version + recs[id].Version
			if doc.Version != want || doc.Name != bases[id].Name || doc.Price.Amount != prices[id].Amount || doc.Stock.Available != stocks[id].Available {
				mismatches++
				if mismatches <= 5 {
					tb.Errorf("product %d: Redis has version %d %q %s %d, source has version %d %q %s %d", id,
						doc.Version, doc.Name, doc.Price.Amount, doc.Stock.Available,
						want, bases[id].Name, prices[id].Amount, stocks[id].Available)
				}
			}
		}
	}
	if mismatches > 0 {
		tb.Fatalf("%d of %d products differ from the source", mismatches, len(ids))
	}
}

func batchGet[T any](tb testing.TB, topo *topology.Topology, kind string, ids []int64) map[int64]T {
	tb.Helper()
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	resp, err := client.Get(topology.URL(topo.Config().Ports.Source) + "/api/" + kind + "?ids=" + strings.Join(parts, ","))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("batch GET %s: %s", kind, resp.Status)
	}
	var body struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		tb.Fatal(err)
	}
	out := map[int64]T{}
	for _, raw := range body.Items {
		var key struct {
			ID        int64 `json:"id"`
			ProductID int64 `json:"product_id"`
		}
		if err := json.Unmarshal(raw, &key); err != nil {
			tb.Fatalf("batch GET %s: %v", kind, err)
		}
		id := key.ProductID
		if id == 0 {
			id = key.ID
		}
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			tb.Fatalf("batch GET %s: item %d: %v", kind, id, err)
		}
		out[id] = v
	}
	return out
}

func allIDs(n int) []int64 {
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	return ids
}

// appliedEvents reads a sync instance's count of applied edit and refresh
// events from its /metrics.
func appliedEvents(port int) (float64, error) {
	resp, err := client.Get(topology.URL(port) + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("sync metrics: %w", err)
	}
	defer resp.Body.Close()
	var total float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "detailpage_sync_events_total{") && strings.Contains(line, `outcome="applied"`) {
			f := strings.Fields(line)
			if len(f) != 2 {
				return 0, fmt.Errorf("sync metrics: line %q", line)
			}
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return 0, fmt.Errorf("sync metrics: %w", err)
			}
			total += v
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("sync metrics: %w", err)
	}
	return total, nil
}

func testPoison(t *testing.T, topo *topology.Topology, ed *editor) {
	brokers := []string{topology.Addr(topo.Config().Ports.Kafka)}
	w := kafka.NewWriter(brokers)
	defer w.Close()
	poison := map[string]string{
		"invalid json":   `{"entity":"product","id":`,
		"unknown entity": `{"entity":"order","id":1,"version":1}`,
		"negative id":    `{"entity":"product","id":-5,"version":1}`,
	}
	for name, v := range poison {
		if err := w.WriteMessages(t.Context(), kafkago.Message{Topic: catalog.TopicHigh, Key: []byte(name), Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	// A valid event on the retry topic whose attempt count is not a number:
	// dead-lettered (its attempts are unknown), not retried forever.
	const badRetry = "retry event with a malformed attempt header"
	poison[badRetry] = `{"entity":"product","id":18}`
	if err := w.WriteMessages(t.Context(), kafkago.Message{Topic: catalog.TopicRetry, Key: []byte(badRetry), Value: []byte(poison[badRetry]),
		Headers: []kafkago.Header{{Key: "attempt", Value: []byte("x")}, {Key: "due_ms", Value: []byte("0")}}}); err != nil {
		t.Fatal(err)
	}
	// The pipeline carries on: an edit after the poison lands.
	r := rand.New(rand.NewPCG(1, 2))
	if err := ed.edit(17, r); err != nil {
		t.Fatal(err)
	}
	MustCaughtUp(t, topo, time.Minute)
	MustMatchSource(t, topo, []int64{17})

	reasons := MustListDLQ(t, topo)
	if r := reasons[badRetry]; !strings.Contains(r, "attempt") {
		t.Errorf("%s: reason %q, want it to name the attempt header", badRetry, r)
	}
	for name := range poison {
		reason, ok := reasons[name]
		if !ok {
			t.Errorf("%s: not in the DLQ (have %v)", name, reasons)
			continue
		}
		if reason == "" {
			t.Errorf("%s: DLQ entry without a reason", name)
		}
		t.Logf("DLQ %s: %s", name, reason)
	}
}

// MustListDLQ runs `detailpage dlq list` against the topology's broker and
// returns key → reason of every dead-lettered event; the command must
// succeed and its total must match the lines it printed.
func MustListDLQ(tb testing.TB, topo *topology.Topology) map[string]string {
	tb.Helper()
	cmd := exec.CommandContext(tb.Context(), builtBinary, "dlq", "list", "--kafka", topology.Addr(topo.Config().Ports.Kafka))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("dlq list: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	reasons := map[string]string{}
	for _, l := range lines[:len(lines)-1] {
		f := strings.SplitN(l, "\t", 4)
		if len(f) != 4 {
			tb.Fatalf("dlq list: line %q", l)
		}
		reasons[f[1]] = strings.TrimPrefix(f[3], "reason: ")
	}
	if want := fmt.Sprintf("dlq: %d events", len(lines)-1); lines[len(lines)-1] != want {
		tb.Fatalf("dlq list ends with %q, want %q", lines[len(lines)-1], want)
	}
	return reasons
}

func testKilledInstance(t *testing.T, topo *topology.Topology, ed *editor) {
	const edits = 5000
	var beforeKill float64
	killed := make(chan struct{})
	var once sync.Once
	ed.run(t, edits, 8, func(i int) {
		switch i {
		case edits / 4:
			status, body, err := adminSource(topo, http.MethodPost, "/_admin/refresh")
			if err != nil || status != http.StatusAccepted {
				t.Errorf("refresh: %d %s %v", status, body, err)
			}
		case edits / 2:
			once.Do(func() {
				defer close(killed)
				var err error
				if beforeKill, err = appliedEvents(topo.Config().Ports.Sync); err != nil {
					t.Errorf("before the kill: %v", err)
				}
				if err := topo.Component(topology.Sync).Kill(); err != nil {
					t.Errorf("kill sync: %v", err)
				}
			})
		}
	})
	select {
	case <-killed:
	default:
		t.Fatal("the edits ended before the sync instance was killed")
	}
	MustCaughtUp(t, topo, 3*time.Minute)
	MustMatchSource(t, topo, allIDs(syncProducts))
	survivor, err := appliedEvents(topo.Config().Ports.Sync2)
	if err != nil {
		t.Fatal(err)
	}
	// Produced since the start: the first fill and the mid-test refresh of
	// every product and shop, the poison phase's edit, and the edits.
	produced := float64(2*(syncProducts+50) + 1 + edits)
	t.Logf("events applied: %.0f by the killed instance (at the kill), %.0f by the survivor, %.0f produced: about %.0f handled twice (the killed instance's last uncommitted batch, replayed)",
		beforeKill, survivor, produced, max(0, beforeKill+survivor-produced))
	MustStart(t, topo, topology.Sync)
}

// adminSource calls an admin endpoint of the source service with the token.
func adminSource(topo *topology.Topology, method, path string) (int, string, error) {
	req, err := http.NewRequest(method, topology.URL(topo.Config().Ports.Source)+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("%s %s: read: %w", method, path, err)
	}
	return resp.StatusCode, string(b), nil
}

// testOutage stops a component for d while edits go on, starts it again,
// and checks that every edit landed.
func testOutage(t *testing.T, topo *topology.Topology, ed *editor, name string, d time.Duration) {
	ed.mu.Lock()
	ed.touched = map[int64]bool{}
	ed.mu.Unlock()
	c := topo.Component(name)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		r := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
		tick := time.NewTicker(50 * time.Millisecond) // 20 edits/s
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if err := ed.edit(1+r.Int64N(syncProducts), r); err != nil {
					t.Errorf("edit during the %s outage: %v", name, err)
				}
			}
		}
	})
	if err := c.Stop(); err != nil {
		t.Fatalf("stop %s: %v", name, err)
	}
	select { // the outage lasts d while the edits go on: a duration, not a synchronisation
	case <-time.After(d):
	case <-t.Context().Done():
	}
	MustStart(t, topo, name)
	close(stop)
	wg.Wait()
	MustCaughtUp(t, topo, 2*time.Minute)
	ed.mu.Lock()
	var ids []int64
	for id := range ed.touched {
		ids = append(ids, id)
	}
	ed.mu.Unlock()
	t.Logf("%d products edited around a %s outage of %s", len(ids), name, d)
	MustMatchSource(t, topo, ids)
}

// testRebuildRace deletes pages so the direct-data service rebuilds them
// while edits to the same products go through the sync service; whoever
// writes last, Redis ends with the newest version.
func testRebuildRace(t *testing.T, topo *topology.Topology, ed *editor) {
	rdb := redisClient(t, topo.Config().Ports.RedisMain)
	ids := allIDs(60)
	var wg sync.WaitGroup
	for round := range 5 {
		for _, id := range ids {
			if err := rdb.Del(t.Context(), redisstore.ItemKey(id)).Err(); err != nil {
				t.Fatal(err)
			}
		}
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(round), 9))
			for _, id := range ids {
				if err := ed.edit(id, r); err != nil {
					t.Errorf("round %d: %v", round, err)
				}
			}
		})
		wg.Go(func() {
			for _, id := range ids {
				if err := askDirect(topo, id); err != nil {
					t.Errorf("round %d: %v", round, err)
				}
			}
		})
		wg.Wait()
	}
	MustCaughtUp(t, topo, time.Minute)
	// Pages the direct service rebuilt after the last edit may be missing
	// from Redis only if nobody asked again; every one that exists must be
	// the newest, and a refresh-free check of all: ask direct once more.
	for _, id := range ids {
		if err := askDirect(topo, id); err != nil {
			t.Error(err)
		}
	}
	MustMatchSource(t, topo, ids)
}

// askDirect asks the direct-data service for product id's page document
// (rebuilding it when Redis main does not have it).
func askDirect(topo *topology.Topology, id int64) error {
	resp, err := client.Get(fmt.Sprintf("%s/api/item/%d", topology.URL(topo.Config().Ports.Direct), id))
	if err != nil {
		return fmt.Errorf("direct item %d: %w", id, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("direct item %d: read: %w", id, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("direct item %d: %s", id, resp.Status)
	}
	return nil
}
