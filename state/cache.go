package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/sitefleet/sitefleet/internal/fsutil"
)

// cacheVersion changes when the cache file's format does.
const cacheVersion = 1

// Cache is the local file in which a node keeps the last state it applied,
// so that it can serve it when started while etcd is unreachable.
type Cache struct {
	// Path of the cache file.
	Path string
	// Prefix is the etcd key prefix the state belongs to; a cache written
	// for another prefix is not loaded.
	Prefix string
}

type cacheFile struct {
	Version   int       `json:"version"`
	Prefix    string    `json:"prefix"`
	AppliedAt time.Time `json:"appliedAt"`
	Snapshot  *Snapshot `json:"snapshot"`
}

// Save writes snap as the applied state, atomically.
func (c Cache) Save(snap *Snapshot, appliedAt time.Time) error {
	b, err := json.Marshal(cacheFile{Version: cacheVersion, Prefix: c.Prefix, AppliedAt: appliedAt.UTC(), Snapshot: snap})
	if err != nil {
		return fmt.Errorf("encode state cache: %w", err)
	}
	if err := fsutil.WriteFileAtomic(c.Path, b, 0o600); err != nil {
		return fmt.Errorf("save state cache: %w", err)
	}
	return nil
}

// Load reads the cached state and when it was applied. It returns an error
// wrapping fs.ErrNotExist when there is no cache, and a descriptive error
// when the file is unreadable or belongs to another prefix.
func (c Cache) Load() (*Snapshot, time.Time, error) {
	b, err := os.ReadFile(c.Path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("load state cache: %w", err)
	}
	var f cacheFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, time.Time{}, fmt.Errorf("load state cache %s: %w", c.Path, err)
	}
	switch {
	case f.Version != cacheVersion:
		return nil, time.Time{}, fmt.Errorf("load state cache %s: version %d, want %d", c.Path, f.Version, cacheVersion)
	case f.Prefix != c.Prefix:
		return nil, time.Time{}, fmt.Errorf("load state cache %s: written for prefix %q, not %q", c.Path, f.Prefix, c.Prefix)
	case f.Snapshot == nil:
		return nil, time.Time{}, fmt.Errorf("load state cache %s: no snapshot", c.Path)
	}
	return f.Snapshot, f.AppliedAt, nil
}

// IsNotExist reports whether a Load error means there is no cache yet.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
