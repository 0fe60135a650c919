package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Names inside the store directory.
const (
	tmpDirName    = "tmp"
	archiveSuffix = ".archive"
	infoSuffix    = ".json"
)

// Info describes a stored bundle.
type Info struct {
	SHA256   string `json:"sha256"`   // lower-case hex of the archive bytes
	Size     int64  `json:"size"`     // archive bytes
	Files    int    `json:"files"`    // regular files extracted
	Unpacked int64  `json:"unpacked"` // sum of regular file sizes
	Format   string `json:"format"`   // FormatTarGz, FormatTar or FormatZip
}

// Store is a content-addressed bundle store in a directory the node owns.
// Its methods are safe for concurrent use. Only one Store may use a
// directory at a time: OpenStore deletes what another one is writing.
type Store struct {
	dir    string // absolute
	tmp    string // temp files, staging and removed directories
	limits Limits
	locks  keyLocks
	shards sync.Map // object shard directories known to exist
	// pruneMu keeps PruneObjects (write) out of builds (read): a build
	// counts on the directory objects it found.
	pruneMu sync.RWMutex
	plans   planCache
	// noSync skips flushing to disk before a commit (fuzzing only).
	noSync bool
}

// OpenStore opens (creating if needed) a store rooted at dir, with limits
// (zero fields take the defaults). It removes the leftovers of interrupted
// ingests and removals: the tmp directory's contents, and archive and
// info files of bundles whose directory does not exist. It returns the
// store, or an error if the directory cannot be prepared.
func OpenStore(dir string, limits Limits) (*Store, error) {
	limits = limits.WithDefaults()
	if err := limits.validate(); err != nil {
		return nil, fmt.Errorf("open bundle store: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open bundle store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("open bundle store: %w", err)
	}
	s := &Store{dir: abs, tmp: filepath.Join(abs, tmpDirName), limits: limits}
	if err := s.clean(); err != nil {
		return nil, fmt.Errorf("open bundle store %s: %w", abs, err)
	}
	return s, nil
}

// clean empties the tmp directory and removes orphaned archive and info
// files.
func (s *Store) clean() error {
	if err := os.RemoveAll(s.tmp); err != nil {
		return fmt.Errorf("remove leftovers: %w", err)
	}
	if err := os.Mkdir(s.tmp, 0o700); err != nil {
		return fmt.Errorf("create tmp: %w", err)
	}
	// Objects being written when the node stopped.
	leftovers, err := filepath.Glob(filepath.Join(s.dir, objectsDirName, "*", objectTempPrefix+"*"))
	if err != nil {
		return fmt.Errorf("list leftovers: %w", err)
	}
	for _, p := range leftovers {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("remove leftovers: %w", err)
		}
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	for _, e := range entries {
		sha, ok := strings.CutSuffix(e.Name(), archiveSuffix)
		if !ok {
			sha, ok = strings.CutSuffix(e.Name(), infoSuffix)
		}
		if !ok || !isSHA256(sha) || s.Has(sha) {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil {
			return fmt.Errorf("remove orphan: %w", err)
		}
	}
	return nil
}

// Dir returns the store's absolute directory. It does not block.
func (s *Store) Dir() string { return s.dir }

// Limits returns the limits the store enforces (defaults filled in). It
// does not block.
func (s *Store) Limits() Limits { return s.limits }

// Has reports whether bundle sha is present: its extracted directory
// exists. It does not block beyond one stat.
func (s *Store) Has(sha string) bool {
	root := s.Root(sha)
	if root == "" {
		return false
	}
	fi, err := os.Stat(root) // a release is a link to its root directory object
	return err == nil && fi.IsDir()
}

// Root returns the absolute path of bundle sha's extracted directory,
// whether or not it exists, or "" if sha is not 64 lower-case hex digits.
// It does not touch the disk.
func (s *Store) Root(sha string) string {
	if !isSHA256(sha) {
		return ""
	}
	return filepath.Join(s.dir, sha)
}

// Info returns what Ingest recorded about bundle sha (read from
// <sha>.json; it blocks only on the disk), or an error matching
// ErrNotFound if the bundle is not present.
func (s *Store) Info(sha string) (Info, error) {
	if err := s.present(sha); err != nil {
		return Info{}, err
	}
	b, err := os.ReadFile(s.infoPath(sha))
	if err != nil {
		return Info{}, fmt.Errorf("bundle %s: read info: %w", sha, err)
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return Info{}, fmt.Errorf("bundle %s: read info: %w", sha, err)
	}
	if info.SHA256 != sha {
		return Info{}, fmt.Errorf("bundle %s: info file names bundle %q", sha, info.SHA256)
	}
	return info, nil
}

// Open returns the archive bytes of bundle sha and their size, to send to
// a peer; the caller closes the reader. A Remove meanwhile does not cut
// the reader short. It returns an error matching ErrNotFound if the
// bundle is not present; it blocks only on the disk.
func (s *Store) Open(sha string) (io.ReadCloser, int64, error) {
	if err := s.present(sha); err != nil {
		return nil, 0, err
	}
	return openSized(s.archivePath(sha), "bundle "+sha)
}

// List returns the hashes of the present bundles, sorted, reading the
// store directory once.
func (s *Store) List() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list bundles: %w", err)
	}
	var shas []string
	for _, e := range entries {
		if (e.IsDir() || e.Type()&fs.ModeSymlink != 0) && isSHA256(e.Name()) {
			shas = append(shas, e.Name())
		}
	}
	slices.Sort(shas)
	return shas, nil
}

// present returns nil if bundle sha is present, else an error matching
// ErrNotFound (or describing a malformed hash).
func (s *Store) present(sha string) error {
	if !isSHA256(sha) {
		return fmt.Errorf("bundle %q: not a lower-case hex SHA-256", sha)
	}
	if !s.Has(sha) {
		return fmt.Errorf("bundle %s: %w", sha, ErrNotFound)
	}
	return nil
}

// archivePath returns where bundle sha's archive bytes are kept.
func (s *Store) archivePath(sha string) string {
	return filepath.Join(s.dir, sha+archiveSuffix)
}

// infoPath returns where bundle sha's Info is kept.
func (s *Store) infoPath(sha string) string {
	return filepath.Join(s.dir, sha+infoSuffix)
}

// isSHA256 reports whether s is 64 lower-case hex digits.
func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
