package cli

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/detailpage/detailpage/go/internal/console"
	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/resilience"
)

// runConsole runs the operator console (docs/console.md).
func runConsole(ctx context.Context, args []string, _, stderr io.Writer) error {
	f := newFlags("console", stderr)
	def := console.Defaults()
	listen := f.String("listen", "DETAILPAGE_CONSOLE_LISTEN", def.Listen, "address of the console (page, API, /turbine.stream)")
	services := f.String("services", "DETAILPAGE_CONSOLE_SERVICES", joinServices(def.Services),
		"Go services whose /hystrix.stream and /metrics are aggregated, name=url comma-separated (two instances of one service: two names, e.g. sync=…,sync2=…)")
	apps := f.String("apps", "DETAILPAGE_CONSOLE_APPS", joinURLs(def.Apps), "app nodes' base URLs, comma-separated (status, degrade and purge; named app1, app2, …)")
	dist := f.String("dist-admin", "DETAILPAGE_CONSOLE_DIST_ADMIN", def.DistAdmin, "the dist tier's admin port base URL (node health); \"\": none")
	hot := f.String("hot", "DETAILPAGE_CONSOLE_HOT", joinURLs(def.Hot), "hot-product service instances' base URLs, comma-separated (hot set, pin and unpin)")
	poll := f.Duration("poll", "DETAILPAGE_CONSOLE_POLL", def.Poll, "how often the snapshot is rebuilt and pushed to open pages")
	idle := f.Duration("session-idle", "DETAILPAGE_CONSOLE_SESSION_IDLE", def.SessionIdle, "a login session ends after this long unused")
	timeout := f.Duration("timeout", "DETAILPAGE_CONSOLE_TIMEOUT", def.Timeout, "longest wait for one node or service to answer")
	lvl := logLevel(f)
	f.Usage = func() {
		w := f.Output()
		io.WriteString(w, "Usage: detailpage console [flags]\n\nThe operator console: every circuit, link, cache and hot product on one page,\n"+
			"the controls to degrade by hand, and /turbine.stream for a Hystrix dashboard.\n"+
			"Needs the admin token in DETAILPAGE_ADMIN_TOKEN (operators log in with it).\n\nFlags:\n")
		f.PrintDefaults()
	}
	none := func() ([]resilience.Command, error) { return nil, nil }
	return serve(ctx, "console", f, args, lvl, none, func(log *slog.Logger, _ []resilience.Command, tel httpapi.Telemetry) (service, error) {
		cfg := def
		var err error
		if cfg.Services, err = console.ParseServices(*services); err != nil {
			return nil, err
		}
		if cfg.Apps, err = console.ParseURLs(*apps, "app", false); err != nil {
			return nil, err
		}
		if cfg.Hot, err = console.ParseURLs(*hot, "hot", true); err != nil {
			return nil, err
		}
		cfg.Listen, cfg.DistAdmin, cfg.Poll, cfg.SessionIdle, cfg.Timeout = *listen, strings.TrimRight(*dist, "/"), *poll, *idle, *timeout
		cfg.AdminToken = os.Getenv(envToken)
		return console.Open(cfg, log, tel)
	})
}

func joinServices(ts []console.Target) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.Name + "=" + t.URL
	}
	return strings.Join(parts, ",")
}

func joinURLs(ts []console.Target) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.URL
	}
	return strings.Join(parts, ",")
}
