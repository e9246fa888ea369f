package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/resilience"
)

// A chain serves from the first link that answers, says which and why the
// earlier ones did not, and counts the link: a business answer (Permanent)
// stops it at that link, every link failing is "none", a caller that left
// is counted nowhere.
func TestChain(t *testing.T) {
	down := errors.New("source down")
	gone := resilience.Permanent{Err: fmt.Errorf("product 7: %w", catalog.ErrNotFound)}
	value := func(v string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { return v, nil }
	}
	fail := func(err error) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { return "", err }
	}
	tests := []struct {
		name      string
		links     []func(context.Context) (string, error)
		cancelled bool
		want      string
		wantLink  string // also the counted link; "" counts nothing
		wantErr   error
		degraded  bool
	}{
		{name: "fresh serves", links: ve(value("new"), value("old")), want: "new", wantLink: "fresh"},
		{name: "last good serves", links: ve(fail(down), value("old")), want: "old", wantLink: "last_good", degraded: true},
		{name: "gone stops the chain", links: ve(fail(gone), value("old")), wantLink: "fresh", wantErr: catalog.ErrNotFound},
		{name: "every link fails", links: ve(fail(down), fail(errors.New("no copy"))), wantLink: "none", wantErr: down, degraded: true},
		{name: "caller left", links: ve(value("new")), cancelled: true, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := MustRegistry(t)
			chain := "test." + t.Name()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.cancelled {
				cancel()
			}
			links := []resilience.Link[string]{{Name: "fresh", Get: tt.links[0]}}
			if len(tt.links) > 1 {
				links = append(links, resilience.Link[string]{Name: "last_good", Get: tt.links[1]})
			}
			got, served, err := resilience.Chain(ctx, chain, links...)
			if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Chain = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
			if tt.wantLink != "none" && served.Link != tt.wantLink {
				t.Errorf("served by %q, want %q", served.Link, tt.wantLink)
			}
			if served.Degraded() != tt.degraded {
				t.Errorf("degraded %v (reason %v), want %v", served.Degraded(), served.Reason, tt.degraded)
			}
			for _, link := range []string{"fresh", "last_good", "none"} {
				want := 0.0
				if link == tt.wantLink {
					want = 1
				}
				n := 0.0
				if m := metric(t, reg, "detailpage_resilience_fallback_chain_served_total", map[string]string{"chain": chain, "link": link}); m != nil {
					n = m.GetCounter().GetValue()
				}
				if n != want {
					t.Errorf("counted %v for link %s, want %v", n, link, want)
				}
			}
		})
	}
}

func ve(fs ...func(context.Context) (string, error)) []func(context.Context) (string, error) {
	return fs
}
