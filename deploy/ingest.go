package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// Ingest reads an archive from r to EOF (never more than MaxArchiveBytes+1
// bytes) into a temp file in the store, hashing it as it arrives. If
// expectSHA256 is not "" and differs, it returns a *HashMismatchError. It
// then extracts the archive into a fresh staging directory and, only if
// all of it succeeded, publishes <sha>.json and <sha>.archive and renames
// the staging directory to <sha>/: that rename is the commit point. Any
// failure removes every temp and staging file.
//
// If the bundle is already present, Ingest still reads and hashes r, and
// returns the stored Info. Concurrent calls with the same content are
// safe: one commits, the others return its Info.
//
// Ingest blocks on reads of r and on the disk. Cancelling ctx makes the
// next read of r fail and stops the extraction between reads; a Read of r
// that is already blocked ends only when r's owner ends it (an HTTP
// server does when the request's context ends).
//
// Archive problems are returned as *FormatError, *EntryError, *LimitError
// or *HashMismatchError, not wrapped; other errors (I/O, ctx) are wrapped.
func (s *Store) Ingest(ctx context.Context, r io.Reader, expectSHA256 string) (Info, error) {
	if r == nil {
		return Info{}, errors.New("ingest: nil reader")
	}
	expect := strings.ToLower(expectSHA256)
	if expect != "" && !isSHA256(expect) {
		return Info{}, fmt.Errorf("ingest: expected SHA-256 %q is not 64 hex digits", expectSHA256)
	}
	archive, info, err := s.receive(ctx, r)
	if err != nil {
		return Info{}, err
	}
	defer os.Remove(archive) // no-op once published
	if expect != "" && expect != info.SHA256 {
		return Info{}, &HashMismatchError{Expected: expect, Actual: info.SHA256}
	}
	if stored, ok, err := s.existing(ctx, info.SHA256); ok || err != nil {
		return stored, err
	}
	staging, err := os.MkdirTemp(s.tmp, "stage-*")
	if err != nil {
		return Info{}, fmt.Errorf("ingest: %w", err)
	}
	defer os.RemoveAll(staging) // no-op once published
	extracted, err := s.extract(ctx, archive, info.Size, staging)
	if err != nil {
		return Info{}, err
	}
	info.Files, info.Unpacked, info.Format = extracted.Files, extracted.Unpacked, extracted.Format
	return s.commit(ctx, info, archive, staging)
}

// receive copies r into a new temp file, at most MaxArchiveBytes, and
// returns the file's path and the archive's hash and size.
func (s *Store) receive(ctx context.Context, r io.Reader) (path string, info Info, err error) {
	f, err := os.CreateTemp(s.tmp, "ingest-*.archive")
	if err != nil {
		return "", Info{}, fmt.Errorf("ingest: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	limit := s.limits.MaxArchiveBytes
	h := sha256.New()
	src := io.LimitReader(&ctxReader{ctx: ctx, r: r}, plusOne(limit))
	n, err := io.CopyBuffer(io.MultiWriter(f, h), src, make([]byte, copyBufferSize))
	var se *sourceError
	switch {
	case errors.As(err, &se):
		return "", Info{}, fmt.Errorf("ingest: read archive: %w", se.err)
	case err != nil:
		return "", Info{}, fmt.Errorf("ingest: write temp file: %w", err)
	case n > limit:
		return "", Info{}, &LimitError{What: LimitArchiveSize, Limit: limit}
	}
	if err := f.Close(); err != nil {
		return "", Info{}, fmt.Errorf("ingest: write temp file: %w", err)
	}
	return f.Name(), Info{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// plusOne returns n+1, or n if that would overflow.
func plusOne(n int64) int64 {
	if n == math.MaxInt64 {
		return n
	}
	return n + 1
}

// existing returns the Info of bundle sha and true if it is present.
func (s *Store) existing(ctx context.Context, sha string) (Info, bool, error) {
	unlock, err := s.locks.lock(ctx, sha)
	if err != nil {
		return Info{}, false, fmt.Errorf("ingest: %w", err)
	}
	defer unlock()
	if !s.Has(sha) {
		return Info{}, false, nil
	}
	info, err := s.Info(sha)
	return info, true, err
}

// extract extracts the archive file (size bytes) into staging and makes
// staging readable by all, as the bundle root.
func (s *Store) extract(ctx context.Context, archive string, size int64, staging string) (Info, error) {
	f, err := os.Open(archive)
	if err != nil {
		return Info{}, fmt.Errorf("ingest: %w", err)
	}
	defer f.Close()
	root, err := os.OpenRoot(staging)
	if err != nil {
		return Info{}, fmt.Errorf("ingest: %w", err)
	}
	defer root.Close()
	info, err := extractArchive(ctx, f, size, root, s.limits)
	if err != nil {
		return Info{}, err
	}
	if err := os.Chmod(staging, 0o755); err != nil {
		return Info{}, fmt.Errorf("ingest: %w", err)
	}
	return info, nil
}

// commit publishes an extracted bundle under its hash, unless another
// Ingest did first, and returns its Info.
func (s *Store) commit(ctx context.Context, info Info, archive, staging string) (Info, error) {
	return s.publishOnce(ctx, "ingest", info, func(infoFile string) error {
		if err := s.flush(staging, archive, infoFile); err != nil {
			return err
		}
		return s.publish(info.SHA256, archive, infoFile, staging)
	})
}

// publishOnce publishes bundle info.SHA256 under its lock unless it is
// present already (then its Info is returned): publish gets the bundle's
// info written to a temp file and puts everything into place. A failed
// publish removes what it left of the bundle.
func (s *Store) publishOnce(ctx context.Context, what string, info Info, publish func(infoFile string) error) (Info, error) {
	unlock, err := s.locks.lock(ctx, info.SHA256)
	if err != nil {
		return Info{}, fmt.Errorf("%s: %w", what, err)
	}
	defer unlock()
	if s.Has(info.SHA256) {
		return s.Info(info.SHA256)
	}
	infoFile, err := s.writeTempInfo(info)
	if err != nil {
		return Info{}, err
	}
	defer os.Remove(infoFile) // no-op once published
	if err := publish(infoFile); err != nil {
		if rerr := s.removeLocked(info.SHA256); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return Info{}, err
	}
	return info, nil
}

// writeTempInfo writes info as JSON to a new temp file and returns its path.
func (s *Store) writeTempInfo(info Info) (string, error) {
	b, err := json.Marshal(info)
	if err != nil {
		return "", fmt.Errorf("ingest: %w", err)
	}
	f, err := os.CreateTemp(s.tmp, "info-*.json")
	if err != nil {
		return "", fmt.Errorf("ingest: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("ingest: write info: %w", err)
	}
	return f.Name(), nil
}

// publish renames the info file, the archive and then (the commit point)
// the staging directory into place, and makes the renames durable.
func (s *Store) publish(sha, archive, infoFile, staging string) error {
	if err := os.Rename(infoFile, s.infoPath(sha)); err != nil {
		return fmt.Errorf("ingest: publish: %w", err)
	}
	if err := os.Rename(archive, s.archivePath(sha)); err != nil {
		return fmt.Errorf("ingest: publish: %w", err)
	}
	if err := os.Rename(staging, s.Root(sha)); err != nil {
		return fmt.Errorf("ingest: publish: %w", err)
	}
	return s.syncDir()
}

// flush makes the given files and trees durable, unless the store was
// told not to.
func (s *Store) flush(paths ...string) error {
	if s.noSync {
		return nil
	}
	if err := flushToDisk(paths...); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	return nil
}
