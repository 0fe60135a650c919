package daemon

import (
	"context"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The automatic memory limit: the Go runtime's soft limit follows the live
// heap, at live × 5/4 plus autoLimitSlack and at least autoLimitFloor. With
// Go's default alone the heap may reach twice what is live between
// collections, and a node holding 100,000 sites then settles near 290 MiB
// where 150 MiB would do; the limit makes it collect earlier instead. It
// is re-read every autoLimitEvery, so a growing state raises it long
// before collections could crowd the node.
const (
	autoLimitFloor = 40 << 20
	autoLimitSlack = 16 << 20
	autoLimitEvery = time.Second
)

// followLiveHeap keeps the soft memory limit at autoLimit(live heap)
// until ctx ends, then lifts it.
func followLiveHeap(ctx context.Context) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(autoLimitEvery)
	defer t.Stop()
	defer debug.SetMemoryLimit(math.MaxInt64)
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetMemoryLimit(autoLimit(sample[0].Value.Uint64()))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// autoLimit is the soft memory limit for a live heap of live bytes.
func autoLimit(live uint64) int64 {
	l := int64(min(live, math.MaxInt64/2))
	return max(autoLimitFloor, l+l/4+autoLimitSlack)
}
