package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// Directory objects: a release's directories are built once per content,
// like its files. dirs/<2 hex>/<digest>/ holds a directory's files as hard
// links to their objects and its subdirectories as symbolic links to
// their own directory objects; the digest is the SHA-256 of the
// directory's listing (each child's kind, digest, mode and name, in
// order). A release is a link to its root directory object. Two releases
// that differ in one file share every directory but those on the path to
// it, so building a release costs about what changed, not its size.

const dirsDirName = "dirs"

// dirPath returns where directory object d is kept.
func (s *Store) dirPath(d string) string {
	return filepath.Join(s.dir, dirsDirName, d[:2], d)
}

// openDir is a directory being collected while a tree is read.
type openDir struct {
	name    string // its last path element ("" for the root)
	depth   int    // 0 for the root
	digest  string // once closed
	listing strings.Builder
	files   []dirFile
	subdirs []dirSub
}

type dirFile struct{ name, sha string }
type dirSub struct{ name, digest string }

// dirPlan is what building a release's directories takes: the
// directories not built before, children first, and the root's digest.
type dirPlan struct {
	sum     TreeSummary
	root    string
	build   []*openDir
	missing []string // objects the directories to build lack, each once
	// existing are the directory objects the plan found and counts on.
	existing []string
	made     time.Time
}

// planCache keeps the last plans made, so that the commit of an upload
// uses the plan made to answer its tree: a tree of 100,000 files costs a
// read of its 100,000 lines per plan.
type planCache struct {
	mu    sync.Mutex
	plans map[string]*dirPlan
}

// planTTL bounds how long a plan is reused.
const planTTL = 10 * time.Minute

func (c *planCache) put(tree string, p *dirPlan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.plans == nil {
		c.plans = map[string]*dirPlan{}
	}
	for k, old := range c.plans {
		if time.Since(old.made) > planTTL || len(c.plans) >= 8 {
			delete(c.plans, k)
		}
	}
	c.plans[tree] = p
}

func (c *planCache) get(tree string) *dirPlan {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.plans[tree]
	if p == nil || time.Since(p.made) > planTTL {
		return nil
	}
	return p
}

func (c *planCache) forget(tree string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.plans, tree)
}

// plan returns the plan of tree: a remembered one whose directories are
// all still there (its missing objects looked for again), or a new one.
// The plan returned is the caller's own (a shallow copy: its directories
// to build are shared, and only read).
func (s *Store) plan(ctx context.Context, tree string) (*dirPlan, error) {
	if p := s.plans.get(tree); p != nil {
		fresh := true
		for _, d := range p.existing {
			if fi, err := os.Lstat(s.dirPath(d)); err != nil || !fi.IsDir() {
				fresh = false
				break
			}
		}
		if fresh {
			cp := *p
			cp.missing = slices.DeleteFunc(slices.Clone(p.missing), s.HasObject)
			return &cp, nil
		}
	}
	p, err := s.planDirs(ctx, tree)
	if err != nil {
		return nil, err
	}
	s.plans.put(tree, p)
	cp := *p
	cp.missing = slices.Clone(p.missing)
	return &cp, nil
}

// planDirs reads tree, checking it against the store's limits, and works
// out its directory objects. Entries come
// in element order, so each directory's entries are contiguous and a stack
// of open directories is all it keeps, besides the directories to build.
// A directory object that exists already has every file it names, so only
// the files of the directories to build are looked for: a release that
// differs from a present one in one file costs a look at its directories
// and at that file.
func (s *Store) planDirs(ctx context.Context, tree string) (*dirPlan, error) {
	plan := &dirPlan{}
	seen := map[string]bool{}
	stack := []*openDir{{}}
	dirs := 0
	closeTo := func(depth int) {
		for len(stack) > depth {
			d := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			sum := sha256.Sum256([]byte("sitefleet-dir 1\n" + d.listing.String()))
			d.digest = hex.EncodeToString(sum[:])
			if fi, err := os.Lstat(s.dirPath(d.digest)); err == nil && fi.IsDir() {
				plan.existing = append(plan.existing, d.digest)
			} else {
				for _, f := range d.files {
					if !seen[f.sha] && !s.HasObject(f.sha) {
						plan.missing = append(plan.missing, f.sha)
					}
					seen[f.sha] = true
				}
				plan.build = append(plan.build, d)
			}
			if len(stack) == 0 {
				plan.root = d.digest
				return
			}
			parent := stack[len(stack)-1]
			parent.listing.WriteString("d " + d.digest + " " + d.name + "\n")
			parent.subdirs = append(parent.subdirs, dirSub{name: d.name, digest: d.digest})
		}
	}
	sum, err := s.readTreeLimited(tree, func(e TreeEntry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		elems := strings.Split(e.Path, "/")
		parents := elems[:len(elems)-1]
		common := 0
		for common < len(parents) && common+1 < len(stack) && stack[common+1].name == parents[common] {
			common++
		}
		closeTo(common + 1)
		for _, name := range parents[common:] {
			if dirs++; dirs > s.limits.MaxFiles {
				return &LimitError{What: LimitFileCount, Limit: int64(s.limits.MaxFiles)}
			}
			stack = append(stack, &openDir{name: name, depth: len(stack)})
		}
		top := stack[len(stack)-1]
		mode := "644"
		if e.Mode&0o111 != 0 {
			mode = "755"
		}
		name := elems[len(elems)-1]
		top.listing.WriteString("f " + e.SHA256 + " " + mode + " " + name + "\n")
		top.files = append(top.files, dirFile{name: name, sha: e.SHA256})
		return nil
	})
	if err != nil {
		return nil, err
	}
	closeTo(0)
	plan.sum, plan.made = sum, time.Now()
	return plan, nil
}

// buildDirs builds the directories of plan, children first.
//
// Directories of one depth do not depend on each other: they are built
// buildParallel at a time, the deepest first.
func (s *Store) buildDirs(ctx context.Context, plan *dirPlan) error {
	byDepth := map[int][]*openDir{}
	deepest := 0
	for _, d := range plan.build {
		byDepth[d.depth] = append(byDepth[d.depth], d)
		deepest = max(deepest, d.depth)
	}
	for depth := deepest; depth >= 0; depth-- {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(buildParallel)
		for _, d := range byDepth[depth] {
			g.Go(func() error {
				if err := gctx.Err(); err != nil {
					return err
				}
				return s.makeDir(d)
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	return nil
}

// buildParallel is how many directories a build makes at once.
const buildParallel = 4

// MissingObjects returns the objects this store lacks to build release
// tree (a tree object it holds), each once.
func (s *Store) MissingObjects(ctx context.Context, tree string) ([]string, error) {
	s.pruneMu.RLock()
	defer s.pruneMu.RUnlock()
	plan, err := s.plan(ctx, tree)
	if err != nil {
		return nil, err
	}
	return plan.missing, nil
}

// makeDir makes directory object d (its digest computed) unless it
// exists. It is staged in tmp and renamed into place whole.
func (s *Store) makeDir(d *openDir) error {
	dst := s.dirPath(d.digest)
	if fi, err := os.Lstat(dst); err == nil && fi.IsDir() {
		return nil
	}
	staging, err := os.MkdirTemp(s.tmp, "dir-*")
	if err != nil {
		return fmt.Errorf("materialize: %w", err)
	}
	defer os.RemoveAll(staging) // no-op once renamed
	for _, f := range d.files {
		if err := s.linkObject(TreeEntry{Path: f.name, SHA256: f.sha}, filepath.Join(staging, f.name)); err != nil {
			return err
		}
	}
	for _, sub := range d.subdirs {
		// Relative, from dirs/<xx>/<digest>/<name>: the store can move.
		if err := os.Symlink(filepath.Join("..", "..", sub.digest[:2], sub.digest), filepath.Join(staging, sub.name)); err != nil {
			return fmt.Errorf("materialize: %w", err)
		}
	}
	if err := os.Chmod(staging, 0o755); err != nil {
		return fmt.Errorf("materialize: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("materialize: %w", err)
	}
	if err := os.Rename(staging, dst); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return nil // made by another build meanwhile
		}
		return fmt.Errorf("materialize: %w", err)
	}
	return nil
}

// reachableDirs returns the directory objects the present releases use.
func (s *Store) reachableDirs() (map[string]bool, error) {
	seen := map[string]bool{}
	releases, err := s.List()
	if err != nil {
		return nil, err
	}
	var visit func(digest string) error
	visit = func(digest string) error {
		if seen[digest] || !isSHA256(digest) {
			return nil
		}
		seen[digest] = true
		entries, err := os.ReadDir(s.dirPath(digest))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Type()&fs.ModeSymlink == 0 {
				continue
			}
			target, err := os.Readlink(filepath.Join(s.dirPath(digest), e.Name()))
			if err != nil {
				return err
			}
			if err := visit(filepath.Base(target)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, sha := range releases {
		target, err := os.Readlink(s.Root(sha))
		if err != nil {
			continue // a release that is a plain directory (stored from an archive before trees)
		}
		if err := visit(filepath.Base(target)); err != nil {
			return nil, err
		}
	}
	return seen, nil
}
