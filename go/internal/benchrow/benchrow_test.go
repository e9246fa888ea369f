package benchrow

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAppendWritesOneLinePerRow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rows.tsv")
	t.Setenv(EnvFile, path)
	Record(t, Row{What: "sync\trefresh", Figure: "21,000 events/s", Target: "≥ 20,000 events/s", Met: true})
	Record(t, Row{What: "command", Figure: "410 ns/op", Target: "≤ 150 ns/op", Met: false})
	Record(t, Row{What: "info", Figure: "3 ms"})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "sync refresh\t21,000 events/s\t≥ 20,000 events/s\tmet\n" +
		"command\t410 ns/op\t≤ 150 ns/op\tNOT MET\n" +
		"info\t3 ms\t\t-\n"
	if string(b) != want {
		t.Fatalf("file:\n%q\nwant:\n%q", b, want)
	}
	if got := Ratio(3, 2); got != "1.50×" {
		t.Fatalf("Ratio(3, 2) = %q", got)
	}
}
