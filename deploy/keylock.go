package deploy

import (
	"context"
	"sync"
)

// keyLocks is a set of mutexes keyed by bundle hash, so that committing
// and removing one bundle are serialised while other bundles proceed.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

// keyLock is one key's mutex (a channel of capacity 1, so waiting can be
// cancelled) and the number of holders and waiters.
type keyLock struct {
	ch   chan struct{}
	refs int
}

// lock blocks until it holds key's lock or ctx is done, and returns the
// function that releases it.
func (k *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; k.release(key, l) }, nil
	case <-ctx.Done():
		k.release(key, l)
		return nil, ctx.Err()
	}
}

// release drops one reference to l, forgetting it when none is left.
func (k *keyLocks) release(key string, l *keyLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(k.locks, key)
	}
}
