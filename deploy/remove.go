package deploy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Remove removes bundle sha: its directory, archive and info. Removing an
// absent bundle is not an error. The directory is first renamed into tmp,
// so a half-removed bundle never looks present. Remove blocks while an
// Ingest of the same bundle commits, and on the disk.
func (s *Store) Remove(sha string) error {
	if !isSHA256(sha) {
		return fmt.Errorf("remove bundle %q: not a lower-case hex SHA-256", sha)
	}
	unlock, err := s.locks.lock(context.Background(), sha)
	if err != nil {
		return fmt.Errorf("remove bundle %s: %w", sha, err)
	}
	defer unlock()
	return s.removeLocked(sha)
}

// removeLocked removes bundle sha; the caller holds its lock.
func (s *Store) removeLocked(sha string) error {
	trash, err := os.MkdirTemp(s.tmp, "remove-*")
	if err != nil {
		return fmt.Errorf("remove bundle %s: %w", sha, err)
	}
	defer os.RemoveAll(trash)
	err = os.Rename(s.Root(sha), filepath.Join(trash, "bundle"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove bundle %s: %w", sha, err)
	}
	for _, p := range []string{s.archivePath(sha), s.infoPath(sha)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove bundle %s: %w", sha, err)
		}
	}
	if err := s.syncDir(); err != nil {
		return fmt.Errorf("remove bundle %s: %w", sha, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove bundle %s: %w", sha, err)
	}
	return nil
}

// syncDir makes renames in the store directory durable, unless the store
// was told not to flush.
func (s *Store) syncDir() error {
	if s.noSync {
		return nil
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", s.dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", s.dir, err)
	}
	return nil
}
