// Package broker runs the embedded Kafka-protocol broker of a local
// topology: franz-go's kfake with its data directory, so topics, offsets and
// committed group offsets survive a restart. Compose runs Apache Kafka
// instead; clients cannot tell the difference.
package broker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

// Config is the broker's configuration.
type Config struct {
	Port       int    // loopback port to listen on
	DataDir    string // where log segments and group offsets are kept
	Partitions int32  // partitions of each catalog topic
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Port <= 0 || c.Port > 65535 {
		return fmt.Errorf("broker: port %d out of range", c.Port)
	}
	if c.DataDir == "" {
		return fmt.Errorf("broker: data dir required")
	}
	if c.Partitions < 1 || c.Partitions > 64 {
		return fmt.Errorf("broker: partitions %d out of range 1..64", c.Partitions)
	}
	return nil
}

// Run starts the broker and serves until ctx is done.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	cluster, err := kfake.NewCluster(
		kfake.Ports(cfg.Port),
		kfake.DataDir(cfg.DataDir),
		kfake.SeedTopics(cfg.Partitions, catalog.Topics...),
		kfake.DefaultNumPartitions(int(cfg.Partitions)),
		kfake.AllowAutoTopicCreation(),
		kfake.ClusterID("detailpage"),
		// Sync services use short sessions so a killed instance's partitions
		// move to the survivor within seconds.
		kfake.GroupMinSessionTimeout(time.Second),
	)
	if err != nil {
		return fmt.Errorf("broker: start: %w", err)
	}
	log.Info("broker listening", "addrs", cluster.ListenAddrs(), "data_dir", cfg.DataDir, "topics", catalog.Topics)
	<-ctx.Done()
	cluster.Close()
	log.Info("broker stopped")
	return nil
}
