// Package preheat fills a cold Redis main, hottest products first, and
// pushes the hottest pages into the app nodes' local caches. Several
// instances share the work through a plan and partition leases in Redis;
// see docs/preheat.md.
package preheat

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
)

// Config is one preheat run.
type Config struct {
	Store         *redisstore.Store    // Redis main (writes: versioned CAS, fenced)
	Source        *sourceclient.Client // the source services
	HotURLs       []string             // hot services' base URLs (http://host:port); none: catalog order
	AppNodes      []string             // app nodes' base URLs for pushing the top pages (none: skip)
	AdminToken    string
	PartitionSize int           // ids per partition (default 1000)
	PushTop       int           // hottest N pages pushed to every app node (default 1000; 0 off)
	Rate          float64       // products/s bound (0: unbounded)
	Lease         time.Duration // lease TTL (default 10s), renewed at 1/3
	Run           string        // run name shared by cooperating instances (default "default")
	Only          []int64       // optional: preheat only these ids, in this order
	Progress      io.Writer     // one line per second: done/total, rate, ETA; nil: silent
	Log           *slog.Logger
}

// Summary is what one instance did.
type Summary struct {
	Products, Written, Skipped, Partitions, Pushed int
	Took                                           time.Duration
}

// Run preheats until every partition of the run's plan is done.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	return Summary{}, errors.New("preheat: not implemented yet")
}
