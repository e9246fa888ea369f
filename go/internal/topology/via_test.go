package topology

import (
	"slices"
	"testing"
)

// specArgv returns the command line of component name in t, from its
// specs (t need not be built by New).
func specArgv(t *testing.T, topo *Topology, name string) []string {
	t.Helper()
	for _, s := range topo.specs() {
		if s.name == name {
			argv, err := s.command()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return argv
		}
	}
	t.Fatalf("no component %s", name)
	return nil
}

// flag returns the value after --name in argv.
func flag(argv []string, name string) string {
	i := slices.Index(argv, name)
	if i < 0 || i+1 >= len(argv) {
		return ""
	}
	return argv[i+1]
}

func TestViaRoutesChosenLinks(t *testing.T) {
	p := DefaultPorts()
	cfg := Config{Ports: p, VarDir: t.TempDir()}
	direct := &Topology{cfg: cfg}
	cfg.Via = Via{Replica: "127.0.0.1:7001", Source: "127.0.0.1:7002"}
	via := &Topology{cfg: cfg}

	for _, tc := range []struct {
		comp, flag, direct, via string
	}{
		{App1, "--replica", Addr(p.RedisReplica), "127.0.0.1:7001"},
		{App2, "--replica", Addr(p.RedisReplica), "127.0.0.1:7001"},
		{Sync, "--source", URL(p.Source), "http://127.0.0.1:7002"},
		{Direct, "--source", URL(p.Source), "http://127.0.0.1:7002"},
		// links not named in Via stay direct
		{Sync, "--redis", Addr(p.RedisMain), Addr(p.RedisMain)},
		{Dist, "--source", Addr(p.Source), Addr(p.Source)},
	} {
		if got := flag(specArgv(t, direct, tc.comp), tc.flag); got != tc.direct {
			t.Errorf("%s %s without Via: %q, want %q", tc.comp, tc.flag, got, tc.direct)
		}
		if got := flag(specArgv(t, via, tc.comp), tc.flag); got != tc.via {
			t.Errorf("%s %s with Via: %q, want %q", tc.comp, tc.flag, got, tc.via)
		}
	}
}
