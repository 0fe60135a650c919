package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/sitefleet/sitefleet/internal/fsutil"
)

// cacheVersion changes when the cache file's format does. Version 1 was
// one JSON document; version 2 is a header (the snapshot without its
// sites, and how many there are) followed by one JSON value per site, so
// that writing it never holds the whole encoded state in memory.
const cacheVersion = 2

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
	// Sites is how many site values follow the header (version 2).
	Sites int `json:"sites"`
}

// Save writes snap as the applied state, atomically. The sites are
// encoded one at a time straight into the file.
func (c Cache) Save(snap *Snapshot, appliedAt time.Time) error {
	head := *snap
	head.Sites = nil
	err := fsutil.WriteAtomic(c.Path, 0o600, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		if err := enc.Encode(cacheFile{Version: cacheVersion, Prefix: c.Prefix, AppliedAt: appliedAt.UTC(), Snapshot: &head, Sites: len(snap.Sites)}); err != nil {
			return fmt.Errorf("encode state cache: %w", err)
		}
		for i := range snap.Sites {
			if err := enc.Encode(&snap.Sites[i]); err != nil {
				return fmt.Errorf("encode state cache: site %s: %w", snap.Sites[i].Domain, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save state cache: %w", err)
	}
	return nil
}

// Load reads the cached state and when it was applied. It returns an error
// wrapping fs.ErrNotExist when there is no cache, and a descriptive error
// when the file is unreadable or belongs to another prefix. It reads the
// format of the version before too.
func (c Cache) Load() (*Snapshot, time.Time, error) {
	file, err := os.Open(c.Path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("load state cache: %w", err)
	}
	defer file.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(file, 64<<10))
	var f cacheFile
	if err := dec.Decode(&f); err != nil {
		return nil, time.Time{}, fmt.Errorf("load state cache %s: %w", c.Path, err)
	}
	switch {
	case f.Version != cacheVersion && f.Version != 1:
		return nil, time.Time{}, fmt.Errorf("load state cache %s: version %d, want %d", c.Path, f.Version, cacheVersion)
	case f.Prefix != c.Prefix:
		return nil, time.Time{}, fmt.Errorf("load state cache %s: written for prefix %q, not %q", c.Path, f.Prefix, c.Prefix)
	case f.Snapshot == nil:
		return nil, time.Time{}, fmt.Errorf("load state cache %s: no snapshot", c.Path)
	case f.Version == 1:
		return f.Snapshot, f.AppliedAt, nil
	case f.Sites < 0 || len(f.Snapshot.Sites) > 0:
		return nil, time.Time{}, fmt.Errorf("load state cache %s: malformed header", c.Path)
	}
	sites := make([]Site, 0, min(f.Sites, 1<<20))
	for range f.Sites {
		var s Site
		if err := dec.Decode(&s); err != nil {
			return nil, time.Time{}, fmt.Errorf("load state cache %s: site %d of %d: %w", c.Path, len(sites)+1, f.Sites, err)
		}
		sites = append(sites, s)
	}
	f.Snapshot.Sites = sites
	return f.Snapshot, f.AppliedAt, nil
}

// IsNotExist reports whether a Load error means there is no cache yet.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
