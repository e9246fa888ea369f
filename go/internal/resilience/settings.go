package resilience

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// settingField is one setting of a Command, as flags and the environment
// name it: a duration or an integer field.
type settingField struct {
	name string
	dur  func(*Command) *time.Duration
	num  func(*Command) *int
}

func (f settingField) get(c *Command) any {
	if f.dur != nil {
		return *f.dur(c)
	}
	return *f.num(c)
}

func (f settingField) set(c *Command, v string) error {
	if f.dur != nil {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s=%q: want a positive duration such as 250ms", f.name, v)
		}
		*f.dur(c) = d
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return fmt.Errorf("%s=%q: want a positive integer", f.name, v)
	}
	*f.num(c) = n
	return nil
}

// copyNonZero sets the field of dst from src unless src's is zero.
func (f settingField) copyNonZero(dst, src *Command) {
	if f.dur != nil {
		if d := *f.dur(src); d != 0 {
			*f.dur(dst) = d
		}
		return
	}
	if n := *f.num(src); n != 0 {
		*f.num(dst) = n
	}
}

var settingFields = []settingField{
	{name: "timeout", dur: func(c *Command) *time.Duration { return &c.Timeout }},
	{name: "max_concurrent", num: func(c *Command) *int { return &c.MaxConcurrent }},
	{name: "fallback_max_concurrent", num: func(c *Command) *int { return &c.FallbackMaxConcurrent }},
	{name: "request_volume_threshold", num: func(c *Command) *int { return &c.RequestVolumeThreshold }},
	{name: "error_percent_threshold", num: func(c *Command) *int { return &c.ErrorPercentThreshold }},
	{name: "sleep_window", dur: func(c *Command) *time.Duration { return &c.SleepWindow }},
	{name: "window", dur: func(c *Command) *time.Duration { return &c.Window }},
}

// ParseSettings parses command settings as a service's flags and
// environment give them (DETAILPAGE_COMMANDS):
//
//	redis.main.read:timeout=500ms,max_concurrent=128;direct.rebuild:max_concurrent=8
//
// Fields: timeout, max_concurrent, fallback_max_concurrent,
// request_volume_threshold, error_percent_threshold, sleep_window, window.
// A field not named stays zero, which Override reads as "unchanged". An
// empty spec is no settings.
func ParseSettings(spec string) ([]Command, error) {
	var out []Command
	for part := range strings.SplitSeq(spec, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, fields, ok := strings.Cut(part, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.TrimSpace(fields) == "" {
			return nil, fmt.Errorf("resilience: settings %q: want name:field=value,…", part)
		}
		if slices.ContainsFunc(out, func(c Command) bool { return c.Name == name }) {
			return nil, fmt.Errorf("resilience: settings: %s given twice", name)
		}
		c := Command{Name: name}
		for kv := range strings.SplitSeq(fields, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
			i := slices.IndexFunc(settingFields, func(f settingField) bool { return f.name == k })
			if i < 0 {
				return nil, fmt.Errorf("resilience: settings of %s: unknown field %q (want one of %s)", name, k, fieldNames())
			}
			if err := settingFields[i].set(&c, v); err != nil {
				return nil, fmt.Errorf("resilience: settings of %s: %w", name, err)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func fieldNames() string {
	names := make([]string, len(settingFields))
	for i, f := range settingFields {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}

// Override returns base with the non-zero fields of each command of over
// applied to the command of base with the same name. A name base does not
// hold is an error: a setting for a command the service does not run is a
// typo, not something to ignore.
func Override(base, over []Command) ([]Command, error) {
	out := slices.Clone(base)
	for _, o := range over {
		i := slices.IndexFunc(out, func(c Command) bool { return c.Name == o.Name })
		if i < 0 {
			names := make([]string, len(base))
			for j, c := range base {
				names[j] = c.Name
			}
			slices.Sort(names)
			return nil, fmt.Errorf("resilience: settings for %s: not a command of this service (its commands: %s)", o.Name, strings.Join(names, ", "))
		}
		for _, f := range settingFields {
			f.copyNonZero(&out[i], &o)
		}
	}
	return out, nil
}

// ConfigureService is what a service does at start: its commands' settings
// (base) with the operator's (over, from flags and environment) applied,
// validated and configured. release ends the service's hold on those names
// (call it on Close).
func ConfigureService(base, over []Command) (release func(), err error) {
	cmds, err := Override(base, over)
	if err != nil {
		return nil, err
	}
	if err := Configure(cmds...); err != nil {
		return nil, err
	}
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.Name
	}
	var once sync.Once
	return func() { once.Do(func() { Release(names...) }) }, nil
}
