package webserver

import (
	"context"
	"os"
	"strings"
	"sync"
)

// semaphore is a mutex whose acquisition can be abandoned when a ctx ends.
type semaphore chan struct{}

// acquire blocks until the semaphore is held or ctx ends (returning ctx.Err()).
func (s semaphore) acquire(ctx context.Context) error {
	select {
	case s <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s semaphore) release() { <-s }

// lineRing keeps the last few lines nginx printed at warn level or above, to
// enrich errors such as a reload that never took effect.
type lineRing struct {
	mu    sync.Mutex
	lines []string
	max   int
}

func newLineRing(n int) *lineRing { return &lineRing{max: n} }

func (r *lineRing) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) == r.max {
		r.lines = r.lines[1:]
	}
	r.lines = append(r.lines, line)
}

func (r *lineRing) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = nil
}

// String returns the remembered lines joined by " | ", or "" if none.
func (r *lineRing) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, " | ")
}

// writeFile writes data to path with mode and, if sync is set, fsyncs it.
func writeFile(path string, data []byte, mode os.FileMode, sync bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil { // umask may have narrowed it
		f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
