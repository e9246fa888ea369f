package resilience

import metricCollector "github.com/afex/hystrix-go/hystrix/metric_collector"

// FlushStream passes every count and latency sample to hystrix-go now, as
// the feeder does every streamFlushEvery.
func FlushStream() { flushStream() }

// StreamCollector is hystrix-go's metric collector of command name, the
// numbers its /hystrix.stream shows.
func StreamCollector(name string) *metricCollector.DefaultMetricCollector {
	return commands.get(name).collector
}

// ShareWithin is how close calls must start to share a run context.
const ShareWithin = shareWithin
