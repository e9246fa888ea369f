package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHotFlags: bad rule flags and environment values stop the command
// with an error naming the flag, before anything listens.
func TestHotFlags(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"window not a multiple of bucket", []string{"--window", "2100ms"}, nil, "--window 2.1s must be a multiple of --bucket"},
		{"ratio 1", []string{"--ratio", "1"}, nil, "--ratio 1 must be above 1"},
		{"floor 0", []string{"--floor", "0"}, nil, "--floor 0 must be"},
		{"top-k over capacity", []string{"--top-k", "100", "--capacity", "64"}, nil, "--top-k 100 must be below --capacity 64"},
		{"max-hot 0", []string{"--max-hot", "0"}, nil, "--max-hot 0"},
		{"bad env", nil, map[string]string{"DETAILPAGE_HOT_COOLDOWN": "soon"}, "DETAILPAGE_HOT_COOLDOWN"},
		{"env over default", nil, map[string]string{"DETAILPAGE_HOT_RATIO": "0.5"}, "--ratio 0.5 must be above 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stderr bytes.Buffer
			args := append([]string{"--listen", "127.0.0.1:0", "--state", ""}, tt.args...)
			err := runHot(context.Background(), args, &stderr, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
