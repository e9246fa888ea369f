package composecheck

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	composecli "github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/detailpage/detailpage/go/internal/cli"
)

// The Dockerfiles of the project's two images, relative to the repository root.
const (
	GoDockerfile        = "docker/go.Dockerfile"
	OpenRestyDockerfile = "docker/openresty.Dockerfile"
)

// Binary is where both images install the detailpage binary.
const Binary = "/usr/local/bin/detailpage"

// ContractPorts is the host port each service publishes: the contract's
// default local ports, so the same URLs work with `make run` and compose.
var ContractPorts = map[string]uint32{
	"dist":          8080,
	"app1":          8081,
	"app2":          8082,
	"redis-main":    6380,
	"redis-replica": 6381,
	"redis-b1":      6382,
	"redis-b2":      6383,
	"sentinel1":     26379,
	"sentinel2":     26380,
	"sentinel3":     26381,
	"kafka":         9092,
	"source":        9101,
	"sync":          9102,
	"direct":        9103,
	"hot":           9104,
	"one":           9105,
	"console":       9100,
}

// NginxMounts are the repository directories every nginx service mounts,
// read-only, at <--root>/<dir>.
var NginxMounts = []string{"lua", "nginx", "templates"}

// notInCompose are subcommands that must not run as compose services.
var notInCompose = map[string]string{
	"broker": "compose runs Apache Kafka, not the embedded broker",
	"up":     "it starts the whole local topology; compose runs each service itself",
	"nginx":  "the Go image has no nginx; build the service from " + OpenRestyDockerfile,

	"bench-protect": "a benchmark that starts topologies of its own, not a service",
}

// addressFlags are the flags whose values name other services.
// (--services is the console's name=url list.)
var addressFlags = []string{"kafka", "redis", "redis-sentinels", "source", "replica", "sentinels", "direct", "apps", "services"}

// Load reads a compose file the way `docker compose` does, with relative
// paths resolved against dir and variables interpolated from env only (never
// the process environment), so the result does not depend on the machine.
func Load(ctx context.Context, dir, file string, env []string) (*types.Project, error) {
	opts, err := composecli.NewProjectOptions([]string{file},
		composecli.WithWorkingDirectory(dir),
		composecli.WithEnv(env),
		composecli.WithInterpolation(true),
		composecli.WithResolvedPaths(true),
	)
	if err != nil {
		return nil, fmt.Errorf("composecheck: %w", err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("composecheck: load %s: %w", file, err)
	}
	return p, nil
}

// image is what a service runs: one of the project's images or a public one.
type image int

const (
	publicImage image = iota
	goImage
	openRestyImage
)

// Invocation is the detailpage command line a service's container runs.
type Invocation struct {
	Subcommand string
	Args       []string
}

// Check returns every way p departs from the repository (p.WorkingDir is its
// root) and the contract; nil when it fits.
func Check(p *types.Project) []error {
	c := &checker{p: p, root: p.WorkingDir, entrypoints: map[string][]string{}}
	names := slices.Sorted(maps.Keys(p.Services))
	for _, n := range names {
		c.service(p.Services[n])
		c.restart(p.Services[n])
	}
	c.ports(names)
	return c.errs
}

// restartPolicies keep a long-running service up after it exits (the
// compose counterpart of the topology's supervisor).
var restartPolicies = []string{"always", "unless-stopped", "on-failure"}

// restart checks that s, unless it is a one-shot job (another service
// waits for it to complete), is restarted when it exits.
func (c *checker) restart(s types.ServiceConfig) {
	if c.oneShot(s.Name) {
		return
	}
	if !slices.Contains(restartPolicies, s.Restart) && (s.Deploy == nil || s.Deploy.RestartPolicy == nil) {
		policy := s.Restart
		if policy == "" {
			policy = "none"
		}
		c.errorf("service %q: restart policy %q: a long-running service wants one of %s", s.Name, policy, strings.Join(restartPolicies, ", "))
	}
}

// oneShot reports whether some service waits for name to complete.
func (c *checker) oneShot(name string) bool {
	for _, s := range c.p.Services {
		if d, ok := s.DependsOn[name]; ok && d.Condition == types.ServiceConditionCompletedSuccessfully {
			return true
		}
	}
	return false
}

// CheckFlags returns an error for every flag a service passes that its
// subcommand does not define. known maps a subcommand to its flag names
// (see UsageFlags).
func CheckFlags(p *types.Project, known map[string][]string) []error {
	c := &checker{p: p, root: p.WorkingDir, entrypoints: map[string][]string{}}
	var errs []error
	for _, n := range slices.Sorted(maps.Keys(p.Services)) {
		inv, ok := c.invocation(p.Services[n])
		if !ok {
			continue
		}
		flags, found := known[inv.Subcommand]
		if !found {
			errs = append(errs, fmt.Errorf("service %q: no flag list for `detailpage %s`", n, inv.Subcommand))
			continue
		}
		parsed, err := parseArgs(inv.Args)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %q: %w", n, err))
			continue
		}
		for _, f := range parsed.order {
			if !slices.Contains(flags, f) {
				errs = append(errs, fmt.Errorf("service %q: --%s is not a flag of `detailpage %s` (it has %s)",
					n, f, inv.Subcommand, strings.Join(flags, ", ")))
			}
		}
	}
	return errs
}

// UsageFlags lists the flag names in the help text of a Go flag.FlagSet
// (lines like "  -listen string").
func UsageFlags(usage string) []string {
	var names []string
	for line := range strings.Lines(usage) {
		rest, ok := strings.CutPrefix(line, "  -")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
		name = strings.TrimPrefix(name, "-")
		if name != "" && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

type checker struct {
	p           *types.Project
	root        string
	errs        []error
	entrypoints map[string][]string // Dockerfile path → its last ENTRYPOINT
}

func (c *checker) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

// dockerfile returns the absolute path of s's Dockerfile, or "" without build.
func (c *checker) dockerfile(s types.ServiceConfig) string {
	if s.Build == nil {
		return ""
	}
	ctxDir := c.abs(s.Build.Context)
	df := s.Build.Dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	if !filepath.IsAbs(df) {
		df = filepath.Join(ctxDir, df)
	}
	return df
}

func (c *checker) abs(path string) string {
	if path == "" {
		path = "."
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(c.root, path)
	}
	return filepath.Clean(path)
}

func (c *checker) image(s types.ServiceConfig) image {
	switch c.dockerfile(s) {
	case "":
		return publicImage
	case filepath.Join(c.root, GoDockerfile):
		return goImage
	case filepath.Join(c.root, OpenRestyDockerfile):
		return openRestyImage
	}
	return publicImage
}

// entrypoint returns the exec-form ENTRYPOINT of the Dockerfile's last stage.
func (c *checker) entrypoint(path string) ([]string, error) {
	if ep, ok := c.entrypoints[path]; ok {
		return ep, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ep []string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if len(line) < len("ENTRYPOINT") || !strings.EqualFold(line[:len("ENTRYPOINT")], "ENTRYPOINT") {
			continue
		}
		rest := strings.TrimSpace(line[len("ENTRYPOINT"):])
		ep = nil
		if err := json.Unmarshal([]byte(rest), &ep); err != nil {
			return nil, fmt.Errorf("%s: ENTRYPOINT %s: want the exec (JSON array) form", path, rest)
		}
	}
	if len(ep) == 0 {
		return nil, fmt.Errorf("%s: no ENTRYPOINT", path)
	}
	c.entrypoints[path] = ep
	return ep, nil
}

// invocation returns the detailpage command line s runs, if it runs one of
// the project's images.
func (c *checker) invocation(s types.ServiceConfig) (Invocation, bool) {
	img := c.image(s)
	if img == publicImage || len(s.Entrypoint) > 0 {
		return Invocation{}, false
	}
	ep, err := c.entrypoint(c.dockerfile(s))
	if err != nil || len(ep) == 0 || ep[0] != Binary {
		return Invocation{}, false
	}
	args := append(slices.Clone(ep[1:]), s.Command...)
	if len(args) == 0 {
		return Invocation{}, false
	}
	return Invocation{Subcommand: args[0], Args: args[1:]}, true
}

func (c *checker) service(s types.ServiceConfig) {
	if s.Build != nil {
		ctxDir := c.abs(s.Build.Context)
		if fi, err := os.Stat(ctxDir); err != nil || !fi.IsDir() {
			c.errorf("service %q: build context %s is not a directory", s.Name, ctxDir)
		}
		df := c.dockerfile(s)
		if fi, err := os.Stat(df); err != nil || !fi.Mode().IsRegular() {
			c.errorf("service %q: Dockerfile %s does not exist", s.Name, df)
			return
		}
	}
	img := c.image(s)
	if s.Build != nil && img == publicImage {
		c.errorf("service %q: builds %s; want %s or %s", s.Name, c.dockerfile(s), GoDockerfile, OpenRestyDockerfile)
		return
	}
	if img == publicImage {
		return
	}
	if len(s.Entrypoint) > 0 {
		c.errorf("service %q: overrides the image's entrypoint with %q; pass arguments in command", s.Name, []string(s.Entrypoint))
		return
	}
	ep, err := c.entrypoint(c.dockerfile(s))
	if err != nil {
		c.errorf("service %q: %v", s.Name, err)
		return
	}
	switch img {
	case goImage:
		if !slices.Equal(ep, []string{Binary}) {
			c.errorf("service %q: %s has ENTRYPOINT %q; want [%q]", s.Name, GoDockerfile, ep, Binary)
			return
		}
	case openRestyImage:
		if len(ep) < 2 || ep[0] != Binary || ep[1] != "nginx" {
			c.errorf("service %q: %s has ENTRYPOINT %q; want [%q, \"nginx\", ...]", s.Name, OpenRestyDockerfile, ep, Binary)
			return
		}
	}
	inv, ok := c.invocation(s)
	if !ok {
		c.errorf("service %q: no command: give a detailpage subcommand", s.Name)
		return
	}
	if !slices.Contains(cli.Names(), inv.Subcommand) {
		c.errorf("service %q: %q is not a detailpage subcommand (have %s)", s.Name, inv.Subcommand, strings.Join(cli.Names(), ", "))
		return
	}
	if why, bad := notInCompose[inv.Subcommand]; bad && img == goImage {
		c.errorf("service %q: runs `detailpage %s`, which does not belong in compose: %s", s.Name, inv.Subcommand, why)
		return
	}
	args, err := parseArgs(inv.Args)
	if err != nil {
		c.errorf("service %q: %v", s.Name, err)
		return
	}
	c.listen(s, args)
	c.addresses(s, args)
	if img == openRestyImage {
		c.nginx(s, args)
	}
}

// listen checks that s listens on all interfaces at a port it publishes.
func (c *checker) listen(s types.ServiceConfig, args parsedArgs) {
	l, ok := args.values["listen"]
	if !ok {
		c.errorf("service %q: no --listen: the default is loopback, unreachable from other containers", s.Name)
		return
	}
	host, port, err := net.SplitHostPort(l)
	if err != nil {
		c.errorf("service %q: --listen=%q: want host:port", s.Name, l)
		return
	}
	if host != "0.0.0.0" && host != "" && host != "::" {
		c.errorf("service %q: --listen=%q: other containers cannot reach %s; listen on 0.0.0.0:%s", s.Name, l, host, port)
	}
	for _, pc := range s.Ports {
		if strconv.FormatUint(uint64(pc.Target), 10) != port {
			c.errorf("service %q: publishes container port %d, but listens on %s", s.Name, pc.Target, port)
		}
	}
}

// addresses checks that every address flag names a service s depends on.
func (c *checker) addresses(s types.ServiceConfig, args parsedArgs) {
	for _, f := range addressFlags {
		v, ok := args.values[f]
		if !ok {
			continue
		}
		for _, addr := range strings.Split(v, ",") {
			addr = strings.TrimSpace(addr)
			if f == "services" {
				_, addr, _ = strings.Cut(addr, "=")
			}
			if strings.Contains(addr, "://") {
				u, err := url.Parse(addr)
				if err != nil || u.Host == "" {
					c.errorf("service %q: --%s=%q: not a URL", s.Name, f, addr)
					continue
				}
				addr = u.Host
			}
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				c.errorf("service %q: --%s=%q: want host:port", s.Name, f, addr)
				continue
			}
			target, found := c.p.Services[host]
			if !found {
				c.errorf("service %q: --%s names %q, which is not a service of this project", s.Name, f, host)
				continue
			}
			if _, dep := s.DependsOn[host]; !dep {
				c.errorf("service %q: --%s names %q, but %q does not depend_on it", s.Name, f, host, s.Name)
			}
			if tinv, ok := c.invocation(target); ok {
				if targs, err := parseArgs(tinv.Args); err == nil {
					if _, tport, err := net.SplitHostPort(targs.values["listen"]); err == nil && tport != port {
						c.errorf("service %q: --%s=%q, but %q listens on port %s", s.Name, f, addr, host, tport)
					}
				}
			}
		}
	}
}

// nginx checks an OpenResty service: tier, name, mounts.
func (c *checker) nginx(s types.ServiceConfig, args parsedArgs) {
	tier := args.values["tier"]
	switch tier {
	case "app":
		for _, f := range []string{"replica", "direct"} {
			if args.values[f] == "" {
				c.errorf("service %q: the app tier needs --%s", s.Name, f)
			}
		}
	case "dist":
		for _, f := range []string{"apps", "direct", "source"} {
			if args.values[f] == "" {
				c.errorf("service %q: the dist tier needs --%s", s.Name, f)
			}
		}
		for _, a := range strings.Split(args.values["apps"], ",") {
			host, _, err := net.SplitHostPort(strings.TrimSpace(a))
			if err != nil {
				continue // reported by addresses
			}
			if t, ok := c.p.Services[host]; ok {
				if inv, ok := c.invocation(t); !ok || inv.Subcommand != "nginx" || !c.isAppTier(inv) {
					c.errorf("service %q: --apps names %q, which is not an app-tier nginx service", s.Name, host)
				}
			}
		}
	default:
		c.errorf("service %q: --tier=%q: want app or dist", s.Name, tier)
	}
	if name := args.values["name"]; name != s.Name {
		c.errorf("service %q: --name=%q: want the service name (it is the node's X-Served-By)", s.Name, name)
	}
	if args.values["modules-dir"] != "none" {
		c.errorf("service %q: --modules-dir=%q: OpenResty has lua built in, want none", s.Name, args.values["modules-dir"])
	}
	root, ok := args.values["root"]
	if !ok || !filepath.IsAbs(root) {
		c.errorf("service %q: --root=%q: want the absolute container path where the repository dirs are mounted", s.Name, root)
		return
	}
	want := map[string]string{} // container target → repository dir
	for _, d := range NginxMounts {
		dir := filepath.Join(c.root, d)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			c.errorf("repository dir %s does not exist (service %q mounts it)", dir, s.Name)
		}
		want[filepath.Join(root, d)] = dir
	}
	got := map[string]types.ServiceVolumeConfig{}
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if _, ok := want[v.Target]; !ok {
			c.errorf("service %q: bind-mounts %s at %s; want only %s under %s", s.Name, v.Source, v.Target, strings.Join(NginxMounts, ", "), root)
			continue
		}
		got[v.Target] = v
	}
	for _, target := range slices.Sorted(maps.Keys(want)) {
		dir := want[target]
		v, ok := got[target]
		switch {
		case !ok:
			c.errorf("service %q: does not mount %s at %s", s.Name, dir, target)
		case c.abs(v.Source) != dir:
			c.errorf("service %q: mounts %s at %s; want the repository's %s", s.Name, c.abs(v.Source), target, dir)
		case !v.ReadOnly:
			c.errorf("service %q: mounts %s read-write; want :ro", s.Name, target)
		}
	}
}

func (c *checker) isAppTier(inv Invocation) bool {
	args, err := parseArgs(inv.Args)
	return err == nil && args.values["tier"] == "app"
}

// ports checks host port collisions and the contract's ports.
func (c *checker) ports(names []string) {
	owners := map[string]string{} // "port/proto" → first service publishing it
	for _, n := range names {
		s := c.p.Services[n]
		var published []uint32
		for _, pc := range s.Ports {
			if pc.Published == "" {
				c.errorf("service %q: container port %d has no fixed host port", n, pc.Target)
				continue
			}
			hp, err := strconv.ParseUint(pc.Published, 10, 16)
			if err != nil {
				c.errorf("service %q: host port %q: want one port number", n, pc.Published)
				continue
			}
			proto := pc.Protocol
			if proto == "" {
				proto = "tcp"
			}
			key := fmt.Sprintf("%d/%s", hp, proto)
			if other, taken := owners[key]; taken {
				c.errorf("host port %s is published by both %q and %q", key, other, n)
			} else {
				owners[key] = n
			}
			published = append(published, uint32(hp))
		}
		want, inContract := ContractPorts[n]
		switch {
		case !inContract && len(published) > 0:
			c.errorf("service %q: publishes host ports %v, which the contract does not list", n, published)
		case inContract && !slices.Equal(published, []uint32{want}):
			c.errorf("service %q: publishes host ports %v; the contract says %d", n, published, want)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(ContractPorts)) {
		if _, ok := c.p.Services[n]; !ok {
			c.errorf("service %q (host port %d in the contract) is missing", n, ContractPorts[n])
		}
	}
}

// parsedArgs are flags as the flag package reads them: -x, --x, =value or
// the next argument.
type parsedArgs struct {
	values map[string]string
	order  []string
}

func parseArgs(args []string) (parsedArgs, error) {
	p := parsedArgs{values: map[string]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			return p, fmt.Errorf("unexpected argument %q: the subcommands take flags only", a)
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		name, value, hasValue := strings.Cut(name, "=")
		if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			i++
			value = args[i]
		}
		if _, dup := p.values[name]; dup {
			return p, fmt.Errorf("flag --%s given twice", name)
		}
		p.values[name] = value
		p.order = append(p.order, name)
	}
	return p, nil
}
