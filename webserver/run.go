package webserver

import (
	"context"
	"errors"
	"syscall"
	"time"

	"github.com/sitefleet/sitefleet/internal/ctxutil"
)

// Restart backoff: 100ms doubling to 5s, reset once nginx stayed up 30s.
const (
	backoffMin   = 100 * time.Millisecond
	backoffMax   = 5 * time.Second
	backoffReset = 30 * time.Second
)

// ErrRunActive is returned by Run when another Run of the same Server is
// still active.
var ErrRunActive = errors.New("webserver: Run is already active")

// Run supervises nginx when Options.Manage is true; when false it just blocks
// until ctx ends and returns nil.
//
// It waits until the first successful Apply (changed or not), then adopts an
// already-running master of ours (the pid file names a live process whose
// command line has our config path) or starts `nginx -p Prefix -c
// Prefix/conf/nginx.conf` as a child in its own process group, forwarding its
// stderr lines to the logger. An adopted master serving another generation
// than the live one is reloaded. If nginx dies, Run kills its orphaned
// workers and restarts it with backoff (100ms doubling to 5s, reset after it
// stayed up 30s); start failures are logged, recorded in Status.LastError
// and retried the same way.
//
// Run blocks until ctx ends; then it stops nginx gracefully (SIGQUIT, wait
// StopTimeout, then SIGTERM, then SIGKILL), waits for all its goroutines and
// returns nil. It returns ErrRunActive if called while another Run is active.
func (s *Server) Run(ctx context.Context) error {
	if !s.opts.Manage {
		<-ctx.Done()
		return nil
	}
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunActive
	}
	defer s.running.Store(false)
	select {
	case <-ctx.Done():
		return nil
	case <-s.ready:
	}
	s.supervise(ctx)
	return nil
}

// supervise keeps one nginx master alive until ctx ends, then stops it.
func (s *Server) supervise(ctx context.Context) {
	delay := backoffMin
	for ctx.Err() == nil {
		p, err := s.startOrAdopt(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.setStartError(err)
			s.log.Error("cannot start nginx", "err", err, "retry_in", delay)
			ctxutil.Sleep(ctx, delay)
			delay = min(2*delay, backoffMax)
			continue
		}
		s.setStartError(nil)
		up := time.Now()
		if p.wait(ctx) != nil { // ctx ended
			s.stop(p)
			s.setProc(nil)
			return
		}
		p.reap()
		s.setProc(nil)
		if time.Since(up) >= backoffReset {
			delay = backoffMin
		}
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
		s.log.Warn("nginx exited unexpectedly; restarting", "pid", p.pid, "status", p.exitStatus(),
			"uptime", time.Since(up).Round(time.Millisecond), "restart_in", delay, "recent", s.stderr.String())
		ctxutil.Sleep(ctx, delay)
		delay = min(2*delay, backoffMax)
	}
}

func (s *Server) setProc(p *process) {
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
}

// startOrAdopt adopts our already-running master or starts a new one. It
// holds applySem so that no Apply swaps the config between nginx reading it
// and the master becoming known (and signalable).
func (s *Server) startOrAdopt(ctx context.Context) (*process, error) {
	if err := s.applySem.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.applySem.release()
	if p := s.adoptable(); p != nil {
		s.setProc(p)
		s.log.Info("adopted running nginx", "pid", p.pid)
		s.reconcileAdopted(ctx, p)
		return p, nil
	}
	p, err := s.startChild(ctx)
	if err != nil {
		return nil, err
	}
	s.setProc(p)
	s.log.Info("started nginx", "pid", p.pid)
	return p, nil
}

// adoptable returns the master named by the pid file if it is alive and was
// started with our config path.
func (s *Server) adoptable() *process {
	pid, err := readPIDFile(s.opts.pidFile())
	if err != nil || !processAlive(pid) {
		return nil
	}
	if !isMasterOf(pid, s.opts.confPath()) {
		s.log.Info("pid file names a process that is not our nginx master; starting a new one", "pid", pid)
		return nil
	}
	st, err := readProcStat(pid)
	return &process{pid: pid, group: err == nil && st.pgrp == pid}
}

// reconcileAdopted reloads an adopted master that serves another generation
// than the live one (e.g. a previous run swapped the config and died before
// reloading). Failures are logged: the master keeps serving its config.
func (s *Server) reconcileAdopted(ctx context.Context, p *process) {
	s.mu.Lock()
	live, addr := s.live, s.probeAddr
	s.mu.Unlock()
	seen, err := s.prober.generation(ctx, addr)
	if err == nil && seen == live {
		return
	}
	s.log.Info("adopted nginx serves another generation; reloading", "pid", p.pid, "serving", seen, "live", live, "probe_err", err)
	before := childPIDs(p.pid)
	if err := p.signal(syscall.SIGHUP); err != nil {
		s.log.Warn("cannot reload adopted nginx", "pid", p.pid, "err", err)
		return
	}
	if err := s.awaitGeneration(ctx, p, before, addr, live); err != nil {
		s.log.Warn("adopted nginx did not load the live generation", "pid", p.pid, "err", err)
	}
}
