package deploy

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkTreeOneChange measures what one node does for a release of
// 100,000 files that differs in one file from a release it holds: store
// and plan the tree (reading its 100,000 lines), store the changed
// object, and build the release. It reports each step's mean.
func BenchmarkTreeOneChange(b *testing.B) {
	ctx := context.Background()
	l := DefaultLimits()
	l.MaxFiles = 200000
	s := newTestEnv(b, l).store
	batch := s.NewBatch()
	var entries []TreeEntry
	for i := range 100000 {
		body := []byte(fmt.Sprint("file ", i))
		sha := sha256Hex(body)
		if err := batch.Put(ctx, bytes.NewReader(body), sha, int64(len(body))); err != nil {
			b.Fatal(err)
		}
		entries = append(entries, TreeEntry{Path: fmt.Sprintf("d%04d/f%06d.bin", i/100, i), SHA256: sha, Size: int64(len(body)), Mode: 0o644})
	}
	if err := batch.Commit(); err != nil {
		b.Fatal(err)
	}
	var putTree, build time.Duration
	release := func(i int) {
		body := []byte(fmt.Sprint("index ", i))
		all := append([]TreeEntry{{Path: "index.html", SHA256: sha256Hex(body), Size: int64(len(body)), Mode: 0o644}}, entries...)
		tree, digest, err := EncodeTree(all)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := s.PutTree(ctx, bytes.NewReader(tree), digest); err != nil {
			b.Fatal(err)
		}
		if _, err := s.MissingObjects(ctx, digest); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := s.PutObject(ctx, bytes.NewReader(body), sha256Hex(body), int64(len(body))); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Materialize(ctx, digest); err != nil {
			b.Fatal(err)
		}
		putTree, build = putTree+mid.Sub(start), build+time.Since(mid)
	}
	release(-1)
	putTree, build = 0, 0
	b.ResetTimer()
	for i := range b.N {
		release(i)
	}
	b.ReportMetric(float64(putTree.Microseconds())/1000/float64(b.N), "tree-ms/op")
	b.ReportMetric(float64(build.Microseconds())/1000/float64(b.N), "object+build-ms/op")
}
