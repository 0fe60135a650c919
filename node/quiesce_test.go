package node

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestQuiesce checks the coalescing of wake-ups: a quiet state passes after
// Quiescence, a continuous burst at the latest after 4 x Quiescence.
func TestQuiesce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		burst int           // wake-ups after the first, one every 15ms
		want  time.Duration // when quiesce returns
	}{
		{"single wake-up", 0, 20 * time.Millisecond},
		{"short burst", 3, 65 * time.Millisecond},
		{"endless burst", 100, 80 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := &Node{opts: Options{Quiescence: 20 * time.Millisecond}, wake: make(chan struct{}, 1)}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() {
					defer close(done)
					for i := 0; i < tc.burst && ctx.Err() == nil; i++ {
						time.Sleep(15 * time.Millisecond)
						n.Trigger()
					}
				}()
				start := time.Now()
				if !n.quiesce(ctx) {
					t.Fatal("quiesce reported cancellation")
				}
				if got := time.Since(start); got != tc.want {
					t.Errorf("quiesce returned after %s, want %s", got, tc.want)
				}
				cancel()
				<-done
			})
		})
	}
}

func TestQuiesceStopsWithTheContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := &Node{opts: Options{Quiescence: time.Hour}, wake: make(chan struct{}, 1)}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(time.Second); cancel() }()
		if n.quiesce(ctx) {
			t.Fatal("quiesce did not report the cancellation")
		}
	})
}
