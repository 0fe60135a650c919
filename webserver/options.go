package webserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by New and Render to zero Options fields.
const (
	DefaultBinary          = "nginx"
	DefaultUser            = "nobody"
	DefaultWorkerProcesses = "auto"
	DefaultReloadTimeout   = 10 * time.Second
	DefaultStopTimeout     = 10 * time.Second
)

// fallbackBinary is tried when DefaultBinary is not in PATH.
const fallbackBinary = "/usr/sbin/nginx"

// Options configures a Server. Only Prefix is required.
type Options struct {
	// Binary is the nginx binary; default "nginx", looked up in PATH and then
	// at /usr/sbin/nginx.
	Binary string
	// Prefix is the nginx prefix directory owned by this package, e.g.
	// <dataDir>/nginx. It must be absolute, clean and made of
	// [A-Za-z0-9._/+@=,-].
	Prefix string
	// Manage makes the Server run nginx as its child (see Server.Run). When
	// false someone else runs nginx; Apply only writes config and runs
	// ReloadCommand.
	Manage bool
	// ReloadCommand is used when Manage is false. Default:
	// [Binary, "-s", "reload", "-p", Prefix, "-c", <Prefix>/conf/nginx.conf].
	ReloadCommand []string
	// User is the worker user, emitted as `user X;` only when this process
	// runs as root. Default "nobody" with group "nogroup" if that group
	// exists, else "nobody".
	User string
	// WorkerProcesses is "auto" (the default) or a positive number.
	WorkerProcesses string
	// AccessLog is "" for `access_log off`, else an absolute path.
	AccessLog string
	// TrafficLog, when set, is an absolute path nginx appends a line per
	// request to, in TrafficLogFormat, buffered (TrafficLogBuffer, flushed
	// at least every second): what package traffic reads for per-site
	// metrics. It is independent of AccessLog.
	TrafficLog string
	// ExtraHTTPConfigFiles are operator-owned files whose contents are copied
	// into each generation and included inside http{}. A broken one fails
	// `nginx -t` and never goes live; restarts use the last good copy.
	// Relative paths inside them resolve against the generation directory.
	ExtraHTTPConfigFiles []string
	// ReloadTimeout bounds how long Apply waits to observe nginx serving a
	// new generation; default 10s.
	ReloadTimeout time.Duration
	// StopTimeout is the graceful stop (SIGQUIT) wait before SIGTERM and
	// then SIGKILL; default 10s.
	StopTimeout time.Duration
	// Logger receives nginx's stderr and lifecycle events; default
	// slog.Default().
	Logger *slog.Logger

	// caps describes the binary; set by New, nil means "assume everything".
	caps *binaryCaps
	// extras, when set, holds the operator's extra files as read once for
	// a whole Apply, so that every config it renders and tests sees the
	// same contents; nil reads ExtraHTTPConfigFiles.
	extras map[string][]byte
}

// binaryCaps is what `nginx -V` told us about the binary.
type binaryCaps struct {
	version [3]int
	without map[string]bool // e.g. "http_uwsgi_module" for --without-http_uwsgi_module
	// brotliStatic is the path of the brotli_static dynamic module, ""
	// when it is not installed.
	brotliStatic string
}

// brotliModuleFile is the dynamic module Debian's
// libnginx-mod-http-brotli-static installs.
const brotliModuleFile = "ngx_http_brotli_static_module.so"

// has reports whether the binary was built with the given module (only
// modules that are on by default and can be disabled with --without-*).
func (c *binaryCaps) has(module string) bool {
	return c == nil || !c.without[module]
}

// atLeast reports whether the binary is nginx v or later (false when it
// is not known).
func (c *binaryCaps) atLeast(v [3]int) bool {
	return c != nil && slices.Compare(c.version[:], v[:]) >= 0
}

// supportsCertificateCache reports whether the binary has
// ssl_certificate_cache (nginx 1.27.4+).
func (c *binaryCaps) supportsCertificateCache() bool { return c.atLeast([3]int{1, 27, 4}) }

// supportsHTTP2Directive reports whether the binary has the http2
// directive (nginx 1.25.1+).
func (c *binaryCaps) supportsHTTP2Directive() bool { return c.atLeast([3]int{1, 25, 1}) }

// supportsErrorLogFlag reports whether the binary knows `-e` (nginx 1.19.5+).
func (c *binaryCaps) supportsErrorLogFlag() bool { return c.atLeast([3]int{1, 19, 5}) }

var (
	versionRE     = regexp.MustCompile(`nginx/(\d+)\.(\d+)\.(\d+)`)
	withoutRE     = regexp.MustCompile(`--without-([a-z0-9_]+)`)
	modulesPathRE = regexp.MustCompile(`--modules-path=(\S+)`)
	safeModuleRE  = regexp.MustCompile(`^[A-Za-z0-9._/+@=,-]+$`)
)

// parseVersionOutput parses the output of `nginx -V`.
func parseVersionOutput(out string) (*binaryCaps, error) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("no nginx version in output %q", firstLine(out))
	}
	caps := &binaryCaps{without: map[string]bool{}}
	for i := range 3 {
		caps.version[i], _ = strconv.Atoi(m[i+1])
	}
	for _, w := range withoutRE.FindAllStringSubmatch(out, -1) {
		caps.without[w[1]] = true
	}
	dir := "/usr/lib/nginx/modules"
	if m := modulesPathRE.FindStringSubmatch(out); m != nil {
		dir = m[1]
	}
	if p := filepath.Join(dir, brotliModuleFile); safeModuleRE.MatchString(p) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			caps.brotliStatic = p
		}
	}
	for _, required := range []string{"http_map_module", "http_rewrite_module", "http"} {
		if caps.without[required] {
			return nil, fmt.Errorf("nginx was built --without-%s, which sitefleet needs", required)
		}
	}
	return caps, nil
}

// probeBinary runs `nginx -V`. It blocks for at most 10 seconds.
func probeBinary(bin string) (*binaryCaps, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-V")
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("run %s -V: %w: %s", bin, err, strings.TrimSpace(out.String()))
	}
	return parseVersionOutput(out.String())
}

// findBinary resolves Options.Binary to an executable path.
func findBinary(bin string) (string, error) {
	if bin == "" {
		if p, err := exec.LookPath(DefaultBinary); err == nil {
			return p, nil
		}
		bin = fallbackBinary
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("find nginx binary: %w", err)
	}
	return filepath.Abs(p)
}

// resolve fills defaults that need no external process and validates every
// value that ends up in nginx.conf. It is used by both New and Render.
func (o Options) resolve() (Options, error) {
	if err := validatePath(o.Prefix); err != nil {
		return o, fmt.Errorf("prefix: %w", err)
	}
	if o.WorkerProcesses == "" {
		o.WorkerProcesses = DefaultWorkerProcesses
	}
	if n, err := strconv.Atoi(o.WorkerProcesses); o.WorkerProcesses != "auto" && (err != nil || n < 1) {
		return o, fmt.Errorf("worker processes %q: want \"auto\" or a positive number", o.WorkerProcesses)
	}
	if o.AccessLog != "" {
		if err := validatePath(o.AccessLog); err != nil {
			return o, fmt.Errorf("access log: %w", err)
		}
	}
	if o.TrafficLog != "" {
		if err := validatePath(o.TrafficLog); err != nil {
			return o, fmt.Errorf("traffic log: %w", err)
		}
	}
	if o.User == "" {
		o.User = DefaultUser + " " + defaultGroup()
	} else if err := validateUser(o.User); err != nil {
		return o, err
	}
	for _, f := range o.ExtraHTTPConfigFiles {
		if !filepath.IsAbs(f) {
			return o, fmt.Errorf("extra http config file %q is not an absolute path", f)
		}
	}
	if o.ReloadTimeout <= 0 {
		o.ReloadTimeout = DefaultReloadTimeout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// validateUser accepts "user" or "user group" made of [A-Za-z0-9._-].
func validateUser(u string) error {
	fields := strings.Split(u, " ")
	if len(fields) > 2 {
		return fmt.Errorf("user %q: want \"user\" or \"user group\"", u)
	}
	for _, f := range fields {
		if f == "" || strings.IndexFunc(f, func(r rune) bool {
			return !(r == '.' || r == '_' || r == '-' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'))
		}) >= 0 {
			return fmt.Errorf("user %q: invalid name (allowed: A-Z a-z 0-9 . _ -)", u)
		}
	}
	return nil
}

// defaultGroup is "nogroup" when that group exists (Debian), else "nobody".
func defaultGroup() string {
	if _, err := user.LookupGroup("nogroup"); err == nil {
		return "nogroup"
	}
	return "nobody"
}

// confPath is the config file nginx is always started and reloaded with.
func (o Options) confPath() string { return filepath.Join(o.Prefix, "conf", "nginx.conf") }
func (o Options) confLink() string { return filepath.Join(o.Prefix, "conf") }
func (o Options) genDir() string   { return filepath.Join(o.Prefix, "generations") }
func (o Options) pidFile() string  { return filepath.Join(o.Prefix, "run", "nginx.pid") }

// prepareDirs creates the prefix layout with world-readable permissions so
// that workers running as Options.User can traverse it.
func (o Options) prepareDirs() error {
	for _, d := range []string{o.Prefix, o.genDir(), filepath.Dir(o.pidFile()),
		filepath.Join(o.Prefix, "logs"), filepath.Join(o.Prefix, "tmp"), filepath.Join(o.Prefix, healthDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return fmt.Errorf("chmod %s: %w", d, err)
		}
	}
	fi, err := os.Lstat(o.confLink())
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("inspect %s: %w", o.confLink(), err)
	case fi.Mode()&os.ModeSymlink == 0:
		return fmt.Errorf("%s exists and is not a symlink; move it away", o.confLink())
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// WorkerGID returns the group nginx workers run as when this process is
// root (Options.User; its group, or the user's primary group), so files
// only workers must read can be given to that group. It returns -1 when
// workers run as this process's own user.
func (s *Server) WorkerGID() (int, error) {
	if os.Geteuid() != 0 {
		return -1, nil
	}
	name, group, hasGroup := strings.Cut(s.opts.User, " ")
	if hasGroup {
		g, err := user.LookupGroup(group)
		if err != nil {
			return -1, fmt.Errorf("nginx worker group %q: %w", group, err)
		}
		return strconv.Atoi(g.Gid)
	}
	u, err := user.Lookup(name)
	if err != nil {
		return -1, fmt.Errorf("nginx worker user %q: %w", name, err)
	}
	return strconv.Atoi(u.Gid)
}
