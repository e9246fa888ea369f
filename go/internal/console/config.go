// Package console is the operator console (`detailpage console`, :9100):
// one place that shows every circuit, link, cache and hot product of a
// detailpage deployment and lets an operator degrade by hand. It talks to
// every service and node server-side (the browser talks only to the
// console):
//
//   - /turbine.stream merges every Go service's /hystrix.stream into one
//     stream in the format the Hystrix dashboard reads from Turbine
//     (turbine.go);
//   - /api/overview and /api/stream serve one snapshot built from those
//     streams, the app nodes' and the dist tier's /_admin/status, the hot
//     service's /api/hot and the services' Prometheus /metrics
//     (collect.go);
//   - POST /api/degrade, /api/hot and /api/purge fan a control out to every
//     app node or hot service instance (controls.go);
//   - the page, embedded (web/), behind a login with the admin token, a
//     session cookie and a CSRF token (auth.go).
package console

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Target is one service or node the console reads: a name shown to the
// operator and its base URL.
type Target struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// Config is the console's configuration.
type Config struct {
	Listen string
	// Services are the Go services whose /hystrix.stream and /metrics the
	// console reads (source, sync, sync2, direct, hot, one, …).
	Services []Target
	// Apps are the app nodes (their /_admin/status, /_admin/degrade and
	// /_admin/purge; the bearer token).
	Apps []Target
	// DistAdmin is the dist tier's admin port (its /_admin/status); "" = none.
	DistAdmin string
	// Hot are the hot service instances (/api/hot, /_admin/hot).
	Hot []Target
	// AdminToken is the token operators log in with and the console sends
	// to the nodes and services. Required.
	AdminToken string
	// Poll is how often the snapshot is rebuilt and pushed to /api/stream
	// (default 1 s).
	Poll time.Duration
	// SessionIdle is how long a session lives unused (default 12 h).
	SessionIdle time.Duration
	// Timeout bounds one request to a node or service (default 1 s).
	Timeout time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Defaults returns the configuration with the contract's addresses.
func Defaults() Config {
	return Config{
		Listen: "127.0.0.1:9100",
		Services: []Target{
			{"source", "http://127.0.0.1:9101"}, {"sync", "http://127.0.0.1:9102"},
			{"direct", "http://127.0.0.1:9103"}, {"hot", "http://127.0.0.1:9104"}, {"one", "http://127.0.0.1:9105"},
		},
		Apps:        []Target{{"app1", "http://127.0.0.1:8081"}, {"app2", "http://127.0.0.1:8082"}},
		DistAdmin:   "http://127.0.0.1:8070",
		Hot:         []Target{{"hot", "http://127.0.0.1:9104"}},
		Poll:        time.Second,
		SessionIdle: 12 * time.Hour,
		Timeout:     time.Second,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("console: listen address required")
	case c.AdminToken == "":
		return errors.New("console: the admin token (DETAILPAGE_ADMIN_TOKEN) is required")
	case c.Poll <= 0 || c.SessionIdle <= 0 || c.Timeout <= 0:
		return errors.New("console: poll, session idle and timeout must be positive")
	}
	seen := map[string]bool{}
	for _, group := range [][]Target{c.Services, c.Apps, c.Hot} {
		for _, t := range group {
			if err := validURL(t.URL); err != nil {
				return fmt.Errorf("console: %s: %w", t.Name, err)
			}
		}
	}
	for _, t := range c.Services {
		if t.Name == "" || seen[t.Name] {
			return fmt.Errorf("console: service names must be unique and not empty (%q)", t.Name)
		}
		seen[t.Name] = true
	}
	if c.DistAdmin != "" {
		if err := validURL(c.DistAdmin); err != nil {
			return fmt.Errorf("console: dist admin: %w", err)
		}
	}
	return nil
}

func validURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an http(s) URL with a host", s)
	}
	return nil
}

// ParseServices parses "name=url,name=url" (the --services flag).
func ParseServices(s string) ([]Target, error) {
	var out []Target
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, u, ok := strings.Cut(part, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("console: services: %q: want name=url", part)
		}
		if err := validURL(u); err != nil {
			return nil, fmt.Errorf("console: services: %s: %w", name, err)
		}
		out = append(out, Target{Name: name, URL: strings.TrimRight(u, "/")})
	}
	return out, nil
}

// ParseURLs parses a comma-separated list of base URLs; each target is
// named prefix1, prefix2, … (prefix alone when there is one and single is
// true).
func ParseURLs(s, prefix string, single bool) ([]Target, error) {
	var urls []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			if err := validURL(part); err != nil {
				return nil, fmt.Errorf("console: %s: %w", prefix, err)
			}
			urls = append(urls, strings.TrimRight(part, "/"))
		}
	}
	out := make([]Target, len(urls))
	for i, u := range urls {
		name := fmt.Sprintf("%s%d", prefix, i+1)
		if single && len(urls) == 1 {
			name = prefix
		}
		out[i] = Target{Name: name, URL: u}
	}
	return out, nil
}
