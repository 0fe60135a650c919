package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Objects: every file of every release is stored once per node, by the
// SHA-256 of its bytes, in objects/<first two hex digits>/<digest>, read
// only. A release's tree (see ReadTree) is an object too. Releases are
// built from objects by hard links (Materialize), so a file shared by
// many releases and apps takes its bytes once, and a release never
// depends on the object staying: removing an object drops one link.

const objectsDirName = "objects"

// ObjectPath returns where object sha is kept, or "" for a malformed sha.
func (s *Store) objectPath(sha string) string {
	if !isSHA256(sha) {
		return ""
	}
	return filepath.Join(s.dir, objectsDirName, sha[:2], sha)
}

// HasObject reports whether object sha is present.
func (s *Store) HasObject(sha string) bool {
	p := s.objectPath(sha)
	if p == "" {
		return false
	}
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode().IsRegular()
}

// OpenObject returns object sha's bytes and size; the caller closes the
// reader. An absent object is an error matching ErrNotFound.
func (s *Store) OpenObject(sha string) (io.ReadCloser, int64, error) {
	p := s.objectPath(sha)
	if p == "" {
		return nil, 0, fmt.Errorf("object %q: not a lower-case hex SHA-256", sha)
	}
	return openSized(p, "object "+sha)
}

// openSized opens the file at p and returns it with its size; what names
// it in errors, an absent file matching ErrNotFound.
func openSized(p, what string) (io.ReadCloser, int64, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	return f, fi.Size(), nil
}

// PutObject stores the next size bytes of r as object sha, verifying the
// digest while it writes, and makes it durable; r is read exactly size
// bytes unless it fails. A present object is not written again (r is
// still consumed, so that a stream of objects stays in step). Bytes that
// do not match sha give a *HashMismatchError and store nothing; size
// beyond the store's MaxUnpackedBytes gives a *LimitError before anything
// is read. To store many objects, use a Batch: one flush for all.
func (s *Store) PutObject(ctx context.Context, r io.Reader, sha string, size int64) error {
	b := s.NewBatch()
	defer b.Discard()
	if err := b.Put(ctx, r, sha, size); err != nil {
		return err
	}
	return b.Commit()
}

// PutObjectFrom stores all of r (at most MaxUnpackedBytes) as object sha,
// as PutObject does.
func (s *Store) PutObjectFrom(ctx context.Context, r io.Reader, sha string) error {
	b := s.NewBatch()
	defer b.Discard()
	if err := b.put(ctx, io.LimitReader(&ctxReader{ctx: ctx, r: r}, plusOne(s.limits.MaxUnpackedBytes)), sha, -1); err != nil {
		return err
	}
	return b.Commit()
}

// Batch stores objects together: each is written and verified in a temp
// file as it comes (Put), and Commit makes them all durable with one
// flush before any becomes an object, so a present object always has its
// bytes on disk, and a stream of thousands of files costs one flush.
type Batch struct {
	s      *Store
	staged []stagedObject
	buf    []byte // for copying; Put is not called concurrently
}

type stagedObject struct{ tmp, sha string }

// NewBatch starts a batch; Discard it when done.
func (s *Store) NewBatch() *Batch { return &Batch{s: s} }

// Put stages the next size bytes of r as object sha, as PutObject stores
// it.
func (b *Batch) Put(ctx context.Context, r io.Reader, sha string, size int64) error {
	if size < 0 || size > b.s.limits.MaxUnpackedBytes {
		return &LimitError{What: LimitUnpackedSize, Limit: b.s.limits.MaxUnpackedBytes}
	}
	return b.put(ctx, io.LimitReader(&ctxReader{ctx: ctx, r: r}, size), sha, size)
}

// put stages src as object sha; size is the exact size, or -1 for "to
// EOF, at most MaxUnpackedBytes".
func (b *Batch) put(ctx context.Context, src io.Reader, sha string, size int64) error {
	s := b.s
	if b.buf == nil {
		b.buf = make([]byte, 64<<10)
	}
	if !isSHA256(sha) {
		return &FormatError{Err: fmt.Errorf("object name %.70q is not a lower-case hex SHA-256", sha)}
	}
	if s.HasObject(sha) {
		if _, err := io.CopyBuffer(io.Discard, src, b.buf); err != nil {
			return fmt.Errorf("object %s: %w", sha, sourceCause(err))
		}
		// Wanted again: PruneObjects's grace starts anew.
		now := time.Now()
		_ = os.Chtimes(s.objectPath(sha), now, now)
		return nil
	}
	// Written beside its final name, so that commit is one rename.
	dir, err := s.shardDir(sha)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, objectTempPrefix+"*")
	if err != nil {
		return fmt.Errorf("object %s: %w", sha, err)
	}
	keep := false
	defer func() {
		if !keep {
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(f, h), src, b.buf)
	if err == nil {
		err = f.Chmod(0o444)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return fmt.Errorf("object %s: %w", sha, sourceCause(err))
	case size >= 0 && n != size:
		return fmt.Errorf("object %s: %w", sha, io.ErrUnexpectedEOF)
	case size < 0 && n > s.limits.MaxUnpackedBytes:
		return &LimitError{What: LimitUnpackedSize, Limit: s.limits.MaxUnpackedBytes}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return &HashMismatchError{Expected: sha, Actual: got}
	}
	keep = true
	b.staged = append(b.staged, stagedObject{tmp: f.Name(), sha: sha})
	return nil
}

// Commit flushes the staged objects to disk and makes them objects.
func (b *Batch) Commit() error {
	if len(b.staged) == 0 {
		return nil
	}
	if err := b.s.flush(b.s.tmp); err != nil {
		return err
	}
	for _, o := range b.staged {
		if err := os.Rename(o.tmp, b.s.objectPath(o.sha)); err != nil {
			return fmt.Errorf("object %s: %w", o.sha, err)
		}
	}
	b.staged = nil
	return nil
}

// Discard removes the temp files of what was staged and not committed.
func (b *Batch) Discard() {
	for _, o := range b.staged {
		os.Remove(o.tmp)
	}
	b.staged = nil
}

// removeObject removes object sha (absent is no error).
func (s *Store) removeObject(sha string) error {
	if p := s.objectPath(sha); p != "" {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove object %s: %w", sha, err)
		}
	}
	return nil
}

// PutTree stores all of r as tree object sha after checking that it
// decodes within the store's limits, and returns its counts; a tree that
// does not is not kept. The plan of its release, made on the way, is
// kept for the build.
func (s *Store) PutTree(ctx context.Context, r io.Reader, sha string) (TreeSummary, error) {
	existed := s.HasObject(sha)
	if err := s.PutObjectFrom(ctx, r, sha); err != nil {
		return TreeSummary{}, err
	}
	// The plan of its release checks it too, and is kept for the build.
	s.pruneMu.RLock()
	plan, err := s.plan(ctx, sha)
	s.pruneMu.RUnlock()
	if err != nil {
		if !existed {
			err = errors.Join(err, s.removeObject(sha))
		}
		return TreeSummary{}, err
	}
	return plan.sum, nil
}

// sourceCause unwraps a read failure of the caller's reader.
func sourceCause(err error) error {
	var se *sourceError
	if errors.As(err, &se) {
		return se.err
	}
	return err
}

// shardDir returns the directory of object sha, creating it once per
// store.
func (s *Store) shardDir(sha string) (string, error) {
	dir := filepath.Join(s.dir, objectsDirName, sha[:2])
	if _, ok := s.shards.Load(sha[:2]); ok {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("object %s: %w", sha, err)
	}
	s.shards.Store(sha[:2], true)
	return dir, nil
}

// objectTempPrefix starts the names of objects being written, in their
// shard directory (OpenStore removes leftovers).
const objectTempPrefix = ".tmp-"

// adoptObject makes the file at p (on the store's file system, holding
// the bytes of sha) object sha: read-only, linked into place. A present
// object wins; p is left for the caller to remove.
func (s *Store) adoptObject(p, sha string) error {
	if err := os.Chmod(p, 0o444); err != nil {
		return fmt.Errorf("object %s: %w", sha, err)
	}
	dst := s.objectPath(sha)
	if _, err := s.shardDir(sha); err != nil {
		return err
	}
	if err := os.Link(p, dst); err != nil && !errors.Is(err, fs.ErrExist) {
		if !errors.Is(err, syscall.EMLINK) {
			return fmt.Errorf("object %s: %w", sha, err)
		}
		// The file has as many links as the file system allows: the
		// object takes a copy of its own.
		if err := copyFile(p, dst, s.tmp); err != nil {
			return fmt.Errorf("object %s: %w", sha, err)
		}
	}
	return nil
}

// copyFile copies src to dst through a temp file in tmp, read-only.
func copyFile(src, dst, tmp string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.CreateTemp(tmp, "copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(out.Name(), 0o444)
	}
	if err == nil {
		err = os.Rename(out.Name(), dst)
	}
	return err
}

// PruneObjects removes the objects that no present release's tree names,
// and the directory objects no present release uses, that are older than
// grace (an upload in progress may have sent objects its release does not
// reference yet). Directory objects hold their files by hard links, so
// this never changes a served file. It returns how many objects and
// directories it removed.
func (s *Store) PruneObjects(ctx context.Context, grace time.Duration) (int, error) {
	s.pruneMu.Lock()
	defer s.pruneMu.Unlock()
	keep := map[string]bool{}
	releases, err := s.List()
	if err != nil {
		return 0, err
	}
	for _, sha := range releases {
		if !s.HasObject(sha) {
			continue // an archive-era bundle: it references no objects
		}
		keep[sha] = true
		if err := s.readTree(sha, func(e TreeEntry) error {
			keep[e.SHA256] = true
			return ctx.Err()
		}); err != nil {
			return 0, fmt.Errorf("prune objects: %w", err)
		}
	}
	cutoff := time.Now().Add(-grace)
	removed, err := s.pruneDirs(cutoff)
	if err != nil {
		return removed, fmt.Errorf("prune objects: %w", err)
	}
	root := filepath.Join(s.dir, objectsDirName)
	dirs, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("prune objects: %w", err)
	}
	for _, d := range dirs {
		entries, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return removed, fmt.Errorf("prune objects: %w", err)
		}
		for _, e := range entries {
			if keep[e.Name()] || ctx.Err() != nil {
				continue
			}
			fi, err := e.Info()
			if err != nil || fi.ModTime().After(cutoff) {
				continue
			}
			if err := os.Remove(filepath.Join(root, d.Name(), e.Name())); err == nil {
				removed++
			}
		}
	}
	return removed, ctx.Err()
}

// pruneDirs removes the directory objects no present release uses that
// were made before cutoff.
func (s *Store) pruneDirs(cutoff time.Time) (int, error) {
	keep, err := s.reachableDirs()
	if err != nil {
		return 0, err
	}
	removed := 0
	shards, err := os.ReadDir(filepath.Join(s.dir, dirsDirName))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for _, shard := range shards {
		entries, err := os.ReadDir(filepath.Join(s.dir, dirsDirName, shard.Name()))
		if err != nil {
			return removed, err
		}
		for _, e := range entries {
			if keep[e.Name()] {
				continue
			}
			if fi, err := e.Info(); err != nil || fi.ModTime().After(cutoff) {
				continue
			}
			// Renamed away first, so a half-removed directory is never
			// taken for a whole one.
			trash, err := os.MkdirTemp(s.tmp, "remove-*")
			if err != nil {
				return removed, err
			}
			if err := os.Rename(filepath.Join(s.dir, dirsDirName, shard.Name(), e.Name()), filepath.Join(trash, "dir")); err == nil {
				removed++
			}
			if err := os.RemoveAll(trash); err != nil {
				return removed, err
			}
		}
	}
	return removed, nil
}

// readTree decodes the tree object sha, without limits beyond the
// defaults' path length (it was checked when stored).
func (s *Store) readTree(sha string, each func(TreeEntry) error) error {
	f, _, err := s.OpenObject(sha)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = ReadTree(f, Limits{MaxFiles: maxInt, MaxUnpackedBytes: maxInt64, MaxPathLength: s.limits.MaxPathLength}, each)
	return err
}

const (
	maxInt   = int(^uint(0) >> 1)
	maxInt64 = int64(^uint64(0) >> 1)
)

// HashFile returns the SHA-256 of the file at p in lower-case hex, and
// its size: the digest an object, an archive or an upload's file is
// named by.
func HashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 64<<10))
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
