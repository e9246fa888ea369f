package resilience_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/detailpage/detailpage/go/internal/resilience"
)

// A fallback chain: fresh data from the source, else the last good copy,
// else a safe default; Served says which link served and why.
func ExampleChain() {
	price, served, err := resilience.Chain(context.Background(), "example.price",
		resilience.Link[string]{Name: "fresh", Get: func(context.Context) (string, error) {
			return "", errors.New("source.price.batch: circuit open")
		}},
		resilience.Link[string]{Name: "last_good", Get: func(context.Context) (string, error) { return "99.00", nil }},
		resilience.Link[string]{Name: "default", Get: func(context.Context) (string, error) { return "", nil }},
	)
	fmt.Println(price, err)
	fmt.Println(served.Link, served.Degraded())
	fmt.Println(served.Reason)
	// Output:
	// 99.00 <nil>
	// last_good true
	// fresh: source.price.batch: circuit open
}
