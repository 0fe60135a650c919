package webserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// probeInterval is how often Apply asks the probe server which generation
// is served while waiting for a reload.
const probeInterval = 10 * time.Millisecond

// reload makes the running nginx, if any, load the generation that was just
// swapped in, and waits until it is observed serving it. Without a running
// master it returns nil at once: the next start reads the new config.
func (s *Server) reload(ctx context.Context, g generation) error {
	master := s.currentMaster()
	if master == nil {
		s.log.Debug("nginx is not running; the new generation is used when it starts", "generation", g.id)
		return nil
	}
	before := childPIDs(master.pid)
	if err := s.signalReload(ctx, master); err != nil {
		return fmt.Errorf("reload nginx: %w", err)
	}
	return s.awaitGeneration(ctx, master, before, g.listen.dialAddr(), g.id)
}

// currentMaster returns the nginx master to reload: our child or adopted
// master when managed, the pid file's live process when unmanaged.
func (s *Server) currentMaster() *process {
	if s.opts.Manage {
		s.mu.Lock()
		p := s.proc
		s.mu.Unlock()
		if p == nil || p.exited() {
			return nil
		}
		return p
	}
	pid, err := readPIDFile(s.opts.pidFile())
	if err != nil || !processAlive(pid) {
		return nil
	}
	return &process{pid: pid}
}

// signalReload sends SIGHUP (managed) or runs ReloadCommand (unmanaged).
func (s *Server) signalReload(ctx context.Context, master *process) error {
	if s.opts.Manage {
		return master.signal(syscall.SIGHUP)
	}
	argv := s.opts.ReloadCommand
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("run %q: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// awaitGeneration polls the probe server until it answers id and none of the
// workers that existed before the reload still accepts connections (nginx
// starts new workers before it tells old ones to quit, so for a moment both
// accept). It gives up after ReloadTimeout or when ctx ends; it returns nil
// early if the master exits, because the next start uses the new config.
func (s *Server) awaitGeneration(ctx context.Context, master *process, before []int, addr, id string) error {
	waitCtx, cancel := context.WithTimeout(ctx, s.opts.ReloadTimeout)
	defer cancel()
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for {
		if master.exited() {
			return nil
		}
		seen, err := s.prober.generation(waitCtx, addr)
		if err == nil && seen == id && workersRetired(before) {
			return nil
		}
		select {
		case <-waitCtx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("wait for nginx (pid %d) to serve generation %s: %w", master.pid, id, ctx.Err())
			}
			return fmt.Errorf("nginx (pid %d) did not serve generation %s within %s (probe: %q, %v; recent nginx messages: %q): %w",
				master.pid, id, s.opts.ReloadTimeout, seen, err, s.stderr.String(), waitCtx.Err())
		case <-tick.C:
		}
	}
}

// workersRetired reports whether none of the given workers still accepts
// connections: each has exited or is "shutting down" (nginx closes a
// worker's listening sockets when it sets that title).
func workersRetired(pids []int) bool {
	for _, pid := range pids {
		if !processAlive(pid) {
			continue
		}
		if cmd, err := readCmdline(pid); err == nil && !strings.Contains(cmd, "shutting down") {
			return false
		}
	}
	return true
}

// prober asks nginx's probe server which generation it serves.
type prober struct {
	client *http.Client
}

func newProber() *prober {
	tr := &http.Transport{
		Proxy:                 nil, // never send probes through an HTTP proxy
		DialContext:           (&net.Dialer{Timeout: time.Second}).DialContext,
		DisableKeepAlives:     true, // every probe must reach a freshly accepting worker
		ResponseHeaderTimeout: 2 * time.Second,
	}
	return &prober{client: &http.Client{
		Transport: tr,
		Timeout:   2 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// generation returns the id the probe server at addr answers. It blocks for
// at most 2s or until ctx ends.
func (p *prober) generation(ctx context.Context, addr string) (string, error) {
	if addr == "" {
		return "", errors.New("no probe address known yet")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/generation", nil)
	if err != nil {
		return "", fmt.Errorf("probe: %w", err)
	}
	req.Host = ProbeHost
	resp, err := p.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		return "", fmt.Errorf("probe: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("probe: status %s", resp.Status)
	}
	return strings.TrimSpace(string(body)), nil
}
