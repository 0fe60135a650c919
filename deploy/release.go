package deploy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// FormatTree is the Info.Format of a release built from a tree of objects.
const FormatTree = "tree"

// MissingObjectsError reports a tree whose objects are not all present.
type MissingObjectsError struct {
	// Missing are the absent digests, each once, in tree order.
	Missing []string
}

func (e *MissingObjectsError) Error() string {
	return fmt.Sprintf("%d objects of the tree are not stored yet (first: %s)", len(e.Missing), e.Missing[0])
}

// Materialize builds release tree (the digest of a tree object) from its
// objects (see the directory objects in dirs.go), published once complete
// and durable, so a release is either whole or absent. The tree is
// checked against the store's limits. Absent objects give a
// *MissingObjectsError and build nothing. A present release is returned
// as it is.
func (s *Store) Materialize(ctx context.Context, tree string) (Info, error) {
	return s.MaterializeFetching(ctx, tree, nil)
}

// MaterializeFetching is Materialize, calling fetch (when not nil) with
// the objects the release lacks, once, before it builds: the plan made to
// find them serves the build too.
func (s *Store) MaterializeFetching(ctx context.Context, tree string, fetch func(missing []string) error) (Info, error) {
	if !s.HasObject(tree) {
		return Info{}, &MissingObjectsError{Missing: []string{tree}}
	}
	if stored, ok, err := s.existing(ctx, tree); ok || err != nil {
		return stored, err
	}
	// Pruning waits: the plan counts on the directories it found.
	s.pruneMu.RLock()
	defer s.pruneMu.RUnlock()
	plan, err := s.plan(ctx, tree)
	if err != nil {
		return Info{}, err
	}
	if len(plan.missing) > 0 && fetch != nil {
		if err := fetch(plan.missing); err != nil {
			return Info{}, err
		}
		plan.missing = slices.DeleteFunc(slices.Clone(plan.missing), s.HasObject)
	}
	if len(plan.missing) > 0 {
		return Info{}, &MissingObjectsError{Missing: plan.missing}
	}
	if err := s.buildDirs(ctx, plan); err != nil {
		s.plans.forget(tree)
		return Info{}, err
	}
	s.plans.forget(tree)
	info := Info{SHA256: tree, Size: 0, Files: plan.sum.Files, Unpacked: plan.sum.Bytes, Format: FormatTree}
	return s.commitRelease(ctx, info, plan.root)
}

// readTreeLimited decodes tree object sha against the store's limits.
func (s *Store) readTreeLimited(sha string, each func(TreeEntry) error) (TreeSummary, error) {
	f, _, err := s.OpenObject(sha)
	if err != nil {
		return TreeSummary{}, err
	}
	defer f.Close()
	return ReadTree(f, s.limits, each)
}

// linkObject makes dst a hard link to e's object (a copy when the object
// has all the links its file system allows).
func (s *Store) linkObject(e TreeEntry, dst string) error {
	src := s.objectPath(e.SHA256)
	err := os.Link(src, dst)
	if errors.Is(err, syscall.EMLINK) {
		err = copyFile(src, dst, s.tmp)
	}
	if errors.Is(err, fs.ErrNotExist) && !s.HasObject(e.SHA256) {
		return &MissingObjectsError{Missing: []string{e.SHA256}} // pruned since it was planned
	}
	if err != nil {
		return fmt.Errorf("materialize %s: %w", e.Path, err)
	}
	return nil
}

// commitRelease publishes release info.SHA256 as a link to its root
// directory object, unless it is there already, once everything it
// references is durable.
func (s *Store) commitRelease(ctx context.Context, info Info, root string) (Info, error) {
	return s.publishOnce(ctx, "materialize", info, func(infoFile string) error {
		link := filepath.Join(s.tmp, "release-"+info.SHA256)
		_ = os.Remove(link)
		if err := os.Symlink(filepath.Join(dirsDirName, root[:2], root), link); err != nil {
			return fmt.Errorf("materialize: %w", err)
		}
		defer os.Remove(link)
		if err := s.flush(s.dir); err != nil {
			return err
		}
		if err := os.Rename(infoFile, s.infoPath(info.SHA256)); err != nil {
			return fmt.Errorf("materialize: publish: %w", err)
		}
		if err := os.Rename(link, s.Root(info.SHA256)); err != nil {
			return fmt.Errorf("materialize: publish: %w", err)
		}
		return s.syncDir()
	})
}

// TreeOf returns the tree of the files under bundle sha's root, storing
// every file as an object (by a hard link: no bytes are copied) and the
// tree itself, and returns the tree's digest. An archive upload becomes a
// release this way: Ingest unpacks it safely, TreeOf files it, and
// Materialize builds the release every node then shares.
func (s *Store) TreeOf(ctx context.Context, sha string) (string, error) {
	root := s.Root(sha)
	if err := s.present(sha); err != nil {
		return "", err
	}
	var entries []TreeEntry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil // directories; Ingest admits nothing else
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		digest, _, err := HashFile(p)
		if err != nil {
			return err
		}
		if err := s.adoptObject(p, digest); err != nil {
			return err
		}
		entries = append(entries, TreeEntry{Path: filepath.ToSlash(rel), SHA256: digest, Size: fi.Size(), Mode: fi.Mode().Perm() | 0o644})
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("file bundle %s as objects: %w", sha, err)
	}
	return s.putTree(ctx, entries)
}

// putTree stores the encoding of entries as an object and returns its
// digest.
func (s *Store) putTree(ctx context.Context, entries []TreeEntry) (string, error) {
	enc, digest, err := EncodeTree(entries)
	if err != nil {
		return "", err
	}
	if err := s.PutObject(ctx, strings.NewReader(string(enc)), digest, int64(len(enc))); err != nil {
		return "", err
	}
	return digest, nil
}

// Overlay builds the release that serves current's files and, for the
// paths keep admits, the files of earlier releases that current lacks
// (the newest earlier release first), and returns its digest. It is how
// hashed assets of a replaced release stay reachable for a while after a
// deploy. An earlier release this store does not hold is skipped; a path
// that would clash with a file or directory of current, or that is a
// top-level _redirects or _headers, is not taken.
func (s *Store) Overlay(ctx context.Context, current string, earlier []string, keep func(path string) bool) (string, error) {
	var entries []TreeEntry
	files, dirs := map[string]bool{}, map[string]bool{}
	add := func(e TreeEntry) {
		entries = append(entries, e)
		files[e.Path] = true
		for p := path.Dir(e.Path); p != "."; p = path.Dir(p) {
			dirs[p] = true
		}
	}
	if err := s.readTree(current, func(e TreeEntry) error { add(e); return nil }); err != nil {
		return "", fmt.Errorf("overlay of %s: %w", current, err)
	}
	for _, sha := range earlier {
		if !s.HasObject(sha) {
			continue
		}
		err := s.readTree(sha, func(e TreeEntry) error {
			if files[e.Path] || dirs[e.Path] || e.Path == "_redirects" || e.Path == "_headers" || !keep(e.Path) || !s.HasObject(e.SHA256) {
				return nil
			}
			for p := path.Dir(e.Path); p != "."; p = path.Dir(p) {
				if files[p] {
					return nil
				}
			}
			add(e)
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("overlay of %s: %w", sha, err)
		}
	}
	digest, err := s.putTree(ctx, entries)
	if err != nil {
		return "", fmt.Errorf("overlay of %s: %w", current, err)
	}
	if _, err := s.Materialize(ctx, digest); err != nil {
		return "", fmt.Errorf("overlay of %s: %w", current, err)
	}
	return digest, nil
}
