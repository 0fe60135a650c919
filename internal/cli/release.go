package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/deploy"
)

// A directory is uploaded by content: the CLI hashes every file, sends the
// tree (the file list with digests), and the node answers with the objects
// it lacks; only those are sent, in parallel batches, then the release is
// committed. A one-file change sends one file.

// Upload batching: a batch closes at batchBytes or batchFiles, and
// uploadWorkers batches are in flight at once.
const (
	batchBytes    = 8 << 20
	batchFiles    = 2000
	uploadWorkers = 4
)

// localFile is one file of the directory to upload.
type localFile struct {
	path  string      // on this machine
	info  os.FileInfo // as it was listed
	entry deploy.TreeEntry
}

// uploadDir uploads dir as app@version by content and returns the node's
// answer. keyFile, when set, signs the release; checksum hashes every
// file rather than those that changed since the last upload. Progress goes to progress
// (nil: none).
func uploadDir(ctx context.Context, c *client.Client, dir, app, version, keyFile string, checksum bool, progress io.Writer) (client.UploadResult, error) {
	files, err := hashDir(ctx, dir, checksum)
	if err != nil {
		return client.UploadResult{}, err
	}
	entries := make([]deploy.TreeEntry, len(files))
	for i, f := range files {
		entries[i] = f.entry
	}
	tree, digest, err := deploy.EncodeTree(entries)
	if err != nil {
		return client.UploadResult{}, fmt.Errorf("upload %s: %w", dir, err)
	}
	sig := ""
	if keyFile != "" {
		if sig, err = signWith(keyFile, deploy.ReleaseDigest(app, version, digest)); err != nil {
			return client.UploadResult{}, err
		}
	}
	byDigest := make(map[string]localFile, len(files))
	for _, f := range files {
		byDigest[f.entry.SHA256] = f
	}
	for attempt := 0; ; attempt++ {
		res, err := c.PutTree(ctx, app, version, strings.NewReader(string(tree)), digest)
		if err != nil {
			return client.UploadResult{}, err
		}
		if err := sendObjects(ctx, c, res.Missing, byDigest, progress); err != nil {
			return client.UploadResult{}, err
		}
		up, err := c.CommitRelease(ctx, app, version, client.CommitRequest{Tree: digest, Signature: sig})
		var ce *client.Error
		if attempt == 0 && errors.As(err, &ce) && strings.Contains(ce.Problem.Detail, "not stored yet") {
			continue // pruned meanwhile: ask again what is missing
		}
		return up, err
	}
}

// hashDir lists dir's regular files with their digests, hashing in
// parallel the files that changed since the last upload of dir (see
// hashCache), or every file with checksum. Anything but a regular file or a directory is an error
// naming it: the node would refuse it anyway.
func hashDir(ctx context.Context, dir string, checksum bool) ([]localFile, error) {
	cache := openHashCache(dir)
	if checksum {
		cache.entries = map[string]cachedHash{}
	}
	files, err := listDir(ctx, dir, cache)
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", dir, err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	hashed := 0
	for i := range files {
		if files[i].entry.SHA256 != "" {
			continue
		}
		hashed++
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			sum, _, err := deploy.HashFile(files[i].path)
			files[i].entry.SHA256 = sum
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("upload %s: %w", dir, err)
	}
	if hashed > 0 || len(files) != len(cache.entries) {
		cache.save(files) // nothing to remember when every digest came from it
	}
	return files, nil
}

// listDir lists dir's regular files, each with its remembered digest when
// the cache has one that still holds. The top-level directories are
// walked in parallel: a large site is mostly a stat per file.
func listDir(ctx context.Context, dir string, cache *hashCache) ([]localFile, error) {
	top, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	parts := make([][]localFile, len(top))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) * 2)
	for i, e := range top {
		g.Go(func() error {
			return filepath.WalkDir(filepath.Join(dir, e.Name()), func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				switch {
				case d.IsDir():
					return nil
				case !d.Type().IsRegular():
					return fmt.Errorf("%s is not a regular file or directory (symbolic links are not uploaded)", p)
				}
				rel, err := filepath.Rel(dir, p)
				if err != nil {
					return err
				}
				fi, err := d.Info()
				if err != nil {
					return err
				}
				mode := fs.FileMode(0o644)
				if fi.Mode()&0o111 != 0 {
					mode = 0o755
				}
				rel = filepath.ToSlash(rel)
				sha, _ := cache.lookup(rel, fi)
				parts[i] = append(parts[i], localFile{path: p, info: fi, entry: deploy.TreeEntry{Path: rel, SHA256: sha, Size: fi.Size(), Mode: mode}})
				return nil
			})
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return slices.Concat(parts...), nil
}

// sendObjects uploads the missing objects in batches, uploadWorkers at a
// time, reporting progress in files and bytes.
func sendObjects(ctx context.Context, c *client.Client, missing []string, byDigest map[string]localFile, progress io.Writer) error {
	var batches [][]localFile
	var cur []localFile
	var curBytes, total int64
	for _, sha := range missing {
		f, ok := byDigest[sha]
		if !ok {
			return fmt.Errorf("the node asked for object %.70q, which is not in the tree", sha)
		}
		if len(cur) > 0 && (curBytes+f.entry.Size > batchBytes || len(cur) >= batchFiles) {
			batches, cur, curBytes = append(batches, cur), nil, 0
		}
		cur = append(cur, f)
		curBytes += f.entry.Size
		total += f.entry.Size
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	p := &countProgress{w: progress, totalFiles: len(missing), totalBytes: total}
	stop := p.start()
	defer stop()
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(uploadWorkers)
	for _, b := range batches {
		g.Go(func() error { return sendBatch(ctx, c, b, p) })
	}
	return g.Wait()
}

// sendBatch streams one batch of objects as frames, read from disk as the
// request body is sent.
func sendBatch(ctx context.Context, c *client.Client, batch []localFile, p *countProgress) error {
	pr, pw := io.Pipe()
	go func() {
		for _, f := range batch {
			if err := writeFrame(pw, f, p); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.Close()
	}()
	_, err := c.PutObjects(ctx, pr)
	pr.CloseWithError(err)
	return err
}

func writeFrame(w io.Writer, f localFile, p *countProgress) error {
	r, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := deploy.WriteObjectFrame(w, f.entry.SHA256, f.entry.Size, r); err != nil {
		return fmt.Errorf("%s changed while it was uploaded? %w", f.path, err)
	}
	p.files.Add(1)
	p.bytes.Add(f.entry.Size)
	return nil
}

// countProgress reports files and bytes sent, every 100 ms and at the end.
type countProgress struct {
	w          io.Writer
	totalFiles int
	totalBytes int64
	files      atomic.Int64
	bytes      atomic.Int64
	mu         sync.Mutex
	done       chan struct{}
	finished   sync.WaitGroup
}

func (p *countProgress) print() {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\ruploading %d/%d files, %s / %s", p.files.Load(), p.totalFiles, humanBytes(p.bytes.Load()), humanBytes(p.totalBytes))
}

// start prints until the returned stop is called.
func (p *countProgress) start() (stop func()) {
	p.done = make(chan struct{})
	p.finished.Add(1)
	go func() {
		defer p.finished.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.print()
			}
		}
	}()
	return func() {
		close(p.done)
		p.finished.Wait()
		p.print()
		if p.w != nil {
			fmt.Fprintln(p.w)
		}
	}
}
