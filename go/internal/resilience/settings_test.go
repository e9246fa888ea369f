package resilience_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/resilience"
)

// uniqueName is a command name no other test (or -count run) uses.
func uniqueName(tb testing.TB, what string) string {
	return fmt.Sprintf("test.%s.%s.%d", tb.Name(), what, commandSeq.Add(1))
}

func TestConfigureValidates(t *testing.T) {
	for name, edit := range map[string]func(*resilience.Command){
		"negative timeout":   func(c *resilience.Command) { c.Timeout = -time.Second },
		"negative limit":     func(c *resilience.Command) { c.MaxConcurrent = -1 },
		"percent above 100":  func(c *resilience.Command) { c.ErrorPercentThreshold = 101 },
		"negative window":    func(c *resilience.Command) { c.Window = -1 },
		"empty name":         func(c *resilience.Command) { c.Name = "" },
		"negative threshold": func(c *resilience.Command) { c.RequestVolumeThreshold = -5 },
	} {
		t.Run(name, func(t *testing.T) {
			c := resilience.Defaults(uniqueName(t, "bad"))
			edit(&c)
			good := resilience.Defaults(uniqueName(t, "good"))
			if err := resilience.Configure(good, c); err == nil {
				t.Fatal("Configure accepted an invalid command")
			}
			// Nothing was applied: the valid one is still free to configure
			// with other settings.
			good.Timeout = 7 * time.Second
			if err := resilience.Configure(good); err != nil {
				t.Fatalf("a rejected Configure held on to a valid command: %v", err)
			}
			resilience.Release(good.Name)
		})
	}
}

func TestConfigureOneConfigurationPerName(t *testing.T) {
	name := uniqueName(t, "cmd")
	a := resilience.Command{Name: name, Timeout: 200 * time.Millisecond, MaxConcurrent: 256}
	b := resilience.Command{Name: name, Timeout: time.Second, MaxConcurrent: 64}

	t.Run("twice differently in one call", func(t *testing.T) {
		err := resilience.Configure(a, b)
		if err == nil || !strings.Contains(err.Error(), "configured twice differently") ||
			!strings.Contains(err.Error(), "timeout 200ms, then 1s") {
			t.Fatalf("err = %v, want the conflict named with both timeouts", err)
		}
	})
	if err := resilience.Configure(a); err != nil {
		t.Fatal(err)
	}
	if got := resilience.Settings(name); got.Timeout != a.Timeout || got.MaxConcurrent != a.MaxConcurrent {
		t.Fatalf("settings %+v, want %+v", got, a)
	}
	t.Run("again differently", func(t *testing.T) {
		if err := resilience.Configure(b); err == nil {
			t.Fatal("a second, different configuration was accepted")
		}
		if got := resilience.Settings(name); got.Timeout != a.Timeout {
			t.Fatalf("the rejected configuration changed the settings: %+v", got)
		}
	})
	t.Run("again the same", func(t *testing.T) {
		// Zero fields are the defaults: the same configuration spelt out.
		same := resilience.Defaults(name)
		same.Timeout, same.MaxConcurrent = a.Timeout, a.MaxConcurrent
		if err := resilience.Configure(same); err != nil {
			t.Fatalf("the same settings again: %v", err)
		}
	})
	// Two holders now: one release is not enough to set it anew.
	resilience.Release(name)
	if err := resilience.Configure(b); err == nil {
		t.Fatal("reconfigured while a holder still has it")
	}
	resilience.Release(name)
	if err := resilience.Configure(b); err != nil {
		t.Fatalf("after every holder released it: %v", err)
	}
	if got := resilience.Settings(name); got.Timeout != b.Timeout || got.MaxConcurrent != b.MaxConcurrent {
		t.Fatalf("settings %+v, want %+v", got, b)
	}
	resilience.Release(name)
}

func TestParseSettings(t *testing.T) {
	got, err := resilience.ParseSettings(" redis.main.read:timeout=500ms, max_concurrent=128 ; direct.rebuild:sleep_window=5s,error_percent_threshold=80,request_volume_threshold=10,fallback_max_concurrent=4,window=20s; ")
	if err != nil {
		t.Fatal(err)
	}
	want := []resilience.Command{
		{Name: "redis.main.read", Timeout: 500 * time.Millisecond, MaxConcurrent: 128},
		{Name: "direct.rebuild", SleepWindow: 5 * time.Second, ErrorPercentThreshold: 80, RequestVolumeThreshold: 10, FallbackMaxConcurrent: 4, Window: 20 * time.Second},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got, err := resilience.ParseSettings(""); err != nil || len(got) != 0 {
		t.Fatalf("empty spec: %v %v, want no settings", got, err)
	}
	for spec, reason := range map[string]string{
		"redis.main.read":                       "want name:field=value",
		"redis.main.read:":                      "want name:field=value",
		":timeout=1s":                           "want name:field=value",
		"x:timeout=fast":                        "positive duration",
		"x:timeout=0s":                          "positive duration",
		"x:max_concurrent=-1":                   "positive integer",
		"x:max_concurrent=1.5":                  "positive integer",
		"x:colour=red":                          `unknown field "colour"`,
		"x:timeout":                             "positive duration",
		"x:timeout=1s;x:max_concurrent=2":       "given twice",
		"x:timeout=1s,sleep_window=1s,nope=1":   `unknown field "nope"`,
		"x:error_percent_threshold=fifty":       "positive integer",
		"x:request_volume_threshold=0":          "positive integer",
		"x:window=-10s":                         "positive duration",
		"x:fallback_max_concurrent=9999999999x": "positive integer",
	} {
		if _, err := resilience.ParseSettings(spec); err == nil || !strings.Contains(err.Error(), reason) {
			t.Errorf("ParseSettings(%q) = %v, want an error with %q", spec, err, reason)
		}
	}
}

func TestOverride(t *testing.T) {
	base := []resilience.Command{
		{Name: "a", Timeout: time.Second, MaxConcurrent: 10},
		{Name: "b", Timeout: 2 * time.Second},
	}
	got, err := resilience.Override(base, []resilience.Command{{Name: "a", MaxConcurrent: 20}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != (resilience.Command{Name: "a", Timeout: time.Second, MaxConcurrent: 20}) || got[1] != base[1] {
		t.Fatalf("got %+v", got)
	}
	if base[0].MaxConcurrent != 10 {
		t.Fatal("Override changed its base")
	}
	if _, err := resilience.Override(base, []resilience.Command{{Name: "c", Timeout: time.Second}}); err == nil ||
		!strings.Contains(err.Error(), "not a command of this service (its commands: a, b)") {
		t.Fatalf("unknown name: %v", err)
	}
}

func TestConfigureService(t *testing.T) {
	name := uniqueName(t, "svc")
	base := []resilience.Command{{Name: name, Timeout: time.Second, MaxConcurrent: 8}}
	release, err := resilience.ConfigureService(base, []resilience.Command{{Name: name, Timeout: 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resilience.Settings(name); got.Timeout != 3*time.Second || got.MaxConcurrent != 8 {
		t.Fatalf("settings %+v, want the override on the base", got)
	}
	// A second service in the process with other settings fails at start.
	if _, err := resilience.ConfigureService(base, nil); err == nil {
		t.Fatal("a second service configured the name differently")
	}
	release()
	release() // once
	release2, err := resilience.ConfigureService(base, nil)
	if err != nil {
		t.Fatalf("after the first service closed: %v", err)
	}
	release2()
	// An invalid override fails at start too.
	if _, err := resilience.ConfigureService(base, []resilience.Command{{Name: name, ErrorPercentThreshold: 101}}); err == nil {
		t.Fatal("an invalid setting was accepted")
	}
}
