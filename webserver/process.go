package webserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"time"
)

// Timings of process management that are not configurable.
const (
	startTimeout   = 30 * time.Second      // nginx must write its pid file within this
	termGrace      = 3 * time.Second       // wait after SIGTERM before SIGKILL
	killGrace      = 5 * time.Second       // wait after SIGKILL
	stderrGrace    = time.Second           // wait for the stderr pipe to drain after exit
	adoptedPollGap = 50 * time.Millisecond // liveness polling of a master that is not our child
	pidFilePollGap = 10 * time.Millisecond // polling for the pid file during start
)

// process is an nginx master: our child, or an adopted master (not our
// child, so its exit is observed by polling /proc).
type process struct {
	pid   int
	group bool          // pid is also the process group id: stragglers can be killed with it
	child bool          // started by us; done and logsDone are set
	done  chan struct{} // closed when Wait returned (child only)
	err   error         // Wait's result, readable after done is closed
	logs  chan struct{} // closed when stderr forwarding ended (child only)
	pipe  *os.File      // read end of nginx's stderr (child only)
}

// exited reports, without blocking, whether the master is gone.
func (p *process) exited() bool {
	if p.child {
		select {
		case <-p.done:
			return true
		default:
			return false
		}
	}
	return !processAlive(p.pid)
}

// wait blocks until the master exits (nil) or ctx ends (ctx.Err()).
func (p *process) wait(ctx context.Context) error {
	if p.child {
		select {
		case <-p.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	tick := time.NewTicker(adoptedPollGap)
	defer tick.Stop()
	for processAlive(p.pid) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// signal sends sig to the master; SIGKILL goes to the whole process group
// when the group is known to be nginx's own.
func (p *process) signal(sig syscall.Signal) error {
	if p.pid <= 1 { // kill(0) or kill(-1) would hit far more than nginx
		return fmt.Errorf("refusing to send %v to pid %d", sig, p.pid)
	}
	target := p.pid
	if sig == syscall.SIGKILL && p.group {
		target = -p.pid
	}
	if err := syscall.Kill(target, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("send %v to nginx pid %d: %w", sig, p.pid, err)
	}
	return nil
}

// exitStatus describes how the master exited; call it after it did.
func (p *process) exitStatus() string {
	switch {
	case !p.child:
		return "exited (adopted, status unknown)"
	case p.err == nil:
		return "exit status 0"
	}
	return p.err.Error()
}

// reap cleans up after the master exited: orphaned workers (a SIGKILLed
// master leaves them serving and holding the port) are killed via the
// process group, and stderr forwarding is drained. It blocks for at most
// stderrGrace.
func (p *process) reap() {
	if p.group && p.pid > 1 {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL) // ESRCH: no stragglers
	}
	if !p.child {
		return
	}
	t := time.NewTimer(stderrGrace)
	defer t.Stop()
	select {
	case <-p.logs:
	case <-t.C:
		p.pipe.Close() // a straggler outside the group still holds the pipe
		<-p.logs
	}
}

// startArgs are the arguments nginx is always started with.
func (s *Server) startArgs() []string {
	args := []string{"-p", s.opts.Prefix, "-c", s.opts.confPath()}
	if s.opts.caps.supportsErrorLogFlag() {
		args = append(args, "-e", "stderr")
	}
	return args
}

// startChild starts nginx as our child in its own process group with its
// stderr forwarded to the logger, and waits until it wrote its pid file
// (which nginx does after loading the config, binding its sockets and
// installing its signal handlers, so SIGHUP is safe from then on). It blocks
// for at most startTimeout; if ctx ends first the child is stopped.
func (s *Server) startChild(ctx context.Context) (*process, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create stderr pipe: %w", err)
	}
	s.stderr.reset() // error messages should quote this process only
	cmd := exec.Command(s.opts.Binary, s.startArgs()...)
	cmd.Dir = s.opts.Prefix
	cmd.Stderr = w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: s.pdeathsig}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("exec %s: %w", s.opts.Binary, err)
	}
	p := &process{pid: cmd.Process.Pid, group: true, child: true,
		done: make(chan struct{}), logs: make(chan struct{}), pipe: r}
	go func() {
		defer close(p.logs)
		s.forwardStderr(r, p.pid)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := s.awaitPIDFile(ctx, p); err != nil {
		if errors.Is(err, errExited) {
			p.reap() // drains stderr into s.stderr first
			return nil, fmt.Errorf("nginx exited during startup (%s): %s", p.exitStatus(), s.stderr.String())
		}
		s.stop(p)
		return nil, err
	}
	return p, nil
}

// errExited reports that nginx exited before it wrote its pid file.
var errExited = errors.New("nginx exited during startup")

// awaitPIDFile waits until the pid file names p.
func (s *Server) awaitPIDFile(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(pidFilePollGap)
	defer tick.Stop()
	for {
		if pid, err := readPIDFile(s.opts.pidFile()); err == nil && pid == p.pid {
			return nil
		}
		select {
		case <-p.done:
			return errExited
		case <-ctx.Done():
			return fmt.Errorf("wait for nginx to start: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// stop ends the master gracefully: SIGQUIT and StopTimeout to finish
// in-flight requests, then SIGTERM, then SIGKILL. It blocks until the master
// exited (or, for an unkillable adopted master, killGrace after SIGKILL) and
// then reaps it.
func (s *Server) stop(p *process) {
	steps := []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGQUIT, s.opts.StopTimeout}, {syscall.SIGTERM, termGrace}, {syscall.SIGKILL, killGrace}}
	start := time.Now()
	for i, step := range steps {
		if i > 0 {
			s.log.Warn("nginx did not stop in time; escalating", "pid", p.pid, "signal", step.sig.String())
		}
		if err := p.signal(step.sig); err != nil {
			s.log.Warn("cannot signal nginx", "pid", p.pid, "err", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), step.wait)
		err := p.wait(ctx)
		cancel()
		if err == nil {
			break
		}
	}
	p.reap()
	s.log.Info("nginx stopped", "pid", p.pid, "status", p.exitStatus(), "took", time.Since(start).Round(time.Millisecond))
}

// nginxLogRE splits an nginx stderr line into level and message:
// "2024/01/02 03:04:05 [warn] 12#12: message" or "nginx: [emerg] message".
var nginxLogRE = regexp.MustCompile(`^(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d |nginx: )?\[([a-z]+)\] (?:\d+#\d+: )?(.*)$`)

// forwardStderr logs each line nginx writes to stderr at the matching slog
// level until the pipe reaches EOF (all nginx processes closed it) or is
// closed by reap.
func (s *Server) forwardStderr(r *os.File, pid int) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		level, msg := slog.LevelWarn, sc.Text()
		if m := nginxLogRE.FindStringSubmatch(msg); m != nil {
			level, msg = nginxLevel(m[1]), m[2]
		}
		if level >= slog.LevelWarn {
			s.stderr.add(msg)
		}
		s.log.Log(context.Background(), level, "nginx: "+msg, "nginx_pid", pid)
	}
}

// nginxLevel maps nginx's error_log levels to slog levels.
func nginxLevel(l string) slog.Level {
	switch l {
	case "debug":
		return slog.LevelDebug
	case "info", "notice":
		return slog.LevelInfo
	case "warn":
		return slog.LevelWarn
	default: // error, crit, alert, emerg
		return slog.LevelError
	}
}
