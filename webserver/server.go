package webserver

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sitefleet/sitefleet/internal/fsutil"
)

// Server owns one nginx prefix: it renders, stages, tests and swaps
// generations (Apply) and, when Options.Manage is set, runs nginx (Run).
// All methods are safe for concurrent use.
type Server struct {
	opts     Options // resolved: every default filled in
	log      *slog.Logger
	prober   *prober
	applySem semaphore     // serialises Apply and process starts
	ready    chan struct{} // closed after the first successful Apply
	readyOne sync.Once
	running  atomic.Bool // a Run is active
	stderr   *lineRing   // last warnings/errors nginx printed
	// pdeathsig, when set (tests), is sent to nginx if we die. Production
	// leaves it 0: nginx keeps serving and the next Run adopts it.
	pdeathsig syscall.Signal

	mu           sync.Mutex // guards the fields below
	live         string     // generation id <Prefix>/conf points to ("" if none)
	prev         string     // the generation live before it, kept for rollback
	probeAddr    string     // where the live generation's probe server listens
	lastApply    time.Time
	lastErr      string
	lastErrStart bool // lastErr came from starting nginx
	restarts     int
	proc         *process // the nginx master when managed and running

	reloads atomic.Int64 // reloads since New

	// Guarded by applySem.
	hosts *linkSet // <Prefix>/hosts: name -> document root
	// linksSynced: the links on disk are known to match liveSites, so a
	// change touches only the links of the sites it changes.
	linksSynced bool
	certs       *linkSet           // <Prefix>/certs: name -> certificate set
	liveSites   []Site             // the sites of the live generation, sorted by domain
	livePlan    Plan               // the live plan's settings (no sites)
	liveGen     generation         // the live generation's id and listen address (no files)
	refused     map[string]refusal // site forms nginx refused, by domain
}

// Status is a snapshot for the node status API.
type Status struct {
	// Running reports whether an nginx master is alive: our child or an
	// adopted master when managed, the pid file's process when unmanaged.
	Running bool
	PID     int
	// Generation is the id of the live rendered config, "" before the first
	// apply (or when the previous run's config could not be verified).
	Generation string
	// LastApply is when Apply last succeeded (changed or not).
	LastApply time.Time
	// LastError is the last failed Apply or nginx start error, "" once a
	// later Apply succeeded (a later successful start clears only a start
	// error).
	LastError string
	// Restarts counts how often Run restarted nginx after it died.
	Restarts int
	// Reloads counts the configs Apply made nginx load since New.
	Reloads int64
}

// TestError is returned when `nginx -t` rejects a staged config.
type TestError struct {
	// Output is what nginx printed.
	Output string
}

// Error implements error.
func (e *TestError) Error() string {
	return "nginx rejected the new config: " + e.Output
}

// New validates opts, resolves the nginx binary (running `nginx -V` once, for
// at most 10s), creates the prefix layout and recognises the live generation
// of a previous run. It starts nothing.
func New(opts Options) (*Server, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, fmt.Errorf("webserver options: %w", err)
	}
	if o.Binary, err = findBinary(o.Binary); err != nil {
		return nil, err
	}
	if o.caps, err = probeBinary(o.Binary); err != nil {
		return nil, fmt.Errorf("inspect nginx binary: %w", err)
	}
	if len(o.ReloadCommand) == 0 {
		o.ReloadCommand = []string{o.Binary, "-s", "reload", "-p", o.Prefix, "-c", o.confPath()}
	}
	if err := o.prepareDirs(); err != nil {
		return nil, fmt.Errorf("prepare nginx prefix: %w", err)
	}
	s := &Server{
		opts:     o,
		log:      o.Logger,
		applySem: make(semaphore, 1),
		ready:    make(chan struct{}),
		stderr:   newLineRing(8),
		refused:  map[string]refusal{},
	}
	s.prober = newProber()
	if s.hosts, err = loadLinkSet(o.hostsDir(), o.linksTmpDir()); err != nil {
		return nil, fmt.Errorf("prepare nginx prefix: %w", err)
	}
	if s.certs, err = loadLinkSet(o.certsDir(), o.linksTmpDir()); err != nil {
		return nil, fmt.Errorf("prepare nginx prefix: %w", err)
	}
	if err := mkdirPublic(o.certSetsDir()); err != nil {
		return nil, fmt.Errorf("prepare nginx prefix: %w", err)
	}
	s.live = s.recoverLive()
	s.warnUntraversable()
	return s, nil
}

// warnUntraversable warns when workers, which run as Options.User when we
// are root, cannot reach <Prefix>/tmp (needed to buffer request bodies)
// because an ancestor of the prefix is not world-searchable.
func (s *Server) warnUntraversable() {
	if os.Geteuid() != 0 {
		return
	}
	for d := filepath.Dir(s.opts.Prefix); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			s.log.Warn("nginx workers cannot traverse a parent of the nginx prefix; request bodies cannot be buffered",
				"dir", d, "mode", fi.Mode().Perm().String(), "user", s.opts.User)
			return
		}
		if d == filepath.Dir(d) {
			return
		}
	}
}

// Render renders plan with the Server's resolved options (including what
// `nginx -V` reported about the binary). See the package-level Render.
func (s *Server) Render(plan Plan) (map[string][]byte, error) {
	return Render(plan, s.opts)
}

// Status returns a snapshot; it never blocks on nginx.
func (s *Server) Status() Status {
	s.mu.Lock()
	st := Status{
		Generation: s.live,
		LastApply:  s.lastApply,
		LastError:  s.lastErr,
		Restarts:   s.restarts,
		Reloads:    s.reloads.Load(),
	}
	p := s.proc
	s.mu.Unlock()
	if s.opts.Manage {
		if p != nil && !p.exited() {
			st.Running, st.PID = true, p.pid
		}
		return st
	}
	if pid, err := readPIDFile(s.opts.pidFile()); err == nil && processAlive(pid) {
		st.Running, st.PID = true, pid
	}
	return st
}

// recoverLive returns the id of the generation <Prefix>/conf points to, if
// its files still hash to that id; otherwise "" so the next Apply stages a
// fresh generation.
func (s *Server) recoverLive() string {
	target, err := os.Readlink(s.opts.confLink())
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		s.log.Warn("cannot read live nginx config link; next apply replaces it", "path", s.opts.confLink(), "err", err)
		return ""
	}
	id := filepath.Base(target)
	files, err := readGeneration(filepath.Join(s.opts.genDir(), id))
	if err != nil || generationID(files) != id {
		s.log.Warn("live nginx config does not match its generation id; next apply replaces it", "target", target, "err", err)
		return ""
	}
	return id
}

// readGeneration reads every regular file of a generation directory.
func readGeneration(dir string) (map[string][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := make(map[string][]byte, len(entries))
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		files[e.Name()] = data
	}
	return files, nil
}

// setError records the outcome of an Apply for Status.
func (s *Server) setError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr, s.lastErrStart = "", false
	if err != nil {
		s.lastErr = err.Error()
	}
}

// setStartError records the outcome of an nginx start for Status. A
// successful start clears only a start error, not a failed Apply's.
func (s *Server) setStartError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		s.lastErr, s.lastErrStart = "start nginx: "+err.Error(), true
	case s.lastErrStart:
		s.lastErr, s.lastErrStart = "", false
	}
}

// markReady lets Run start nginx once a generation is known good.
func (s *Server) markReady() {
	s.readyOne.Do(func() { close(s.ready) })
}

// SetReady makes HealthPath answer 200 (ready) or 503 (not ready) on
// every host, by writing or removing the ready file; nginx needs no
// reload for it.
func (s *Server) SetReady(ready bool) error {
	path := filepath.Join(s.opts.Prefix, healthDir, "ready")
	if !ready {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("health: %w", err)
		}
		return nil
	}
	if err := fsutil.WriteFileAtomic(path, []byte("ready\n"), 0o644); err != nil {
		return fmt.Errorf("health: %w", err)
	}
	return nil
}
