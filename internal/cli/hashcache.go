package cli

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hashCache remembers the digest of each file of an uploaded directory
// with its size and modification time, so the next upload hashes only
// the files that changed: rsync's quick check, made stricter with the
// inode change time, which a program that resets the modification time
// (cp -p, touch -r) cannot reset. An entry is trusted only when the file
// was last changed well before the cache was written, so a file changed
// twice within a clock tick is hashed again.
type hashCache struct {
	path    string
	written time.Time
	entries map[string]cachedHash
}

type cachedHash struct {
	size, mtime, ctime int64 // times in nanoseconds
	sha                string
}

// changeTime is the inode change time of fi, or its modification time
// where the system does not give it.
func changeTime(fi os.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix())
	}
	return fi.ModTime()
}

// racyWindow: entries modified this close to the cache's writing are not
// trusted.
const racyWindow = 2 * time.Second

// openHashCache loads the cache of dir; a missing or unreadable cache is
// an empty one. It lives in the user's cache directory.
func openHashCache(dir string) *hashCache {
	c := &hashCache{entries: map[string]cachedHash{}}
	base, err := os.UserCacheDir()
	abs, aerr := filepath.Abs(dir)
	if err != nil || aerr != nil {
		return c
	}
	sum := sha256.Sum256([]byte(abs))
	c.path = filepath.Join(base, "sitefleet", "hashes", hex.EncodeToString(sum[:16])+".tsv")
	f, err := os.Open(c.path)
	if err != nil {
		return c
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return c
	}
	written, err := strconv.ParseInt(strings.TrimPrefix(sc.Text(), "sitefleet-hashes 2 "), 10, 64)
	if err != nil || !strings.HasPrefix(sc.Text(), "sitefleet-hashes 2 ") {
		return c
	}
	c.written = time.Unix(0, written)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "\t", 5)
		if len(parts) != 5 {
			continue
		}
		size, err1 := strconv.ParseInt(parts[0], 10, 64)
		mtime, err2 := strconv.ParseInt(parts[1], 10, 64)
		ctime, err3 := strconv.ParseInt(parts[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || len(parts[3]) != 64 {
			continue
		}
		c.entries[parts[4]] = cachedHash{size: size, mtime: mtime, ctime: ctime, sha: parts[3]}
	}
	return c
}

// lookup returns the remembered digest of rel if its size and mtime are
// those remembered and it was not modified within racyWindow of the
// cache's writing.
func (c *hashCache) lookup(rel string, fi os.FileInfo) (string, bool) {
	e, ok := c.entries[rel]
	ctime := changeTime(fi)
	if !ok || e.size != fi.Size() || e.mtime != fi.ModTime().UnixNano() || e.ctime != ctime.UnixNano() ||
		!ctime.Before(c.written.Add(-racyWindow)) || !fi.ModTime().Before(c.written.Add(-racyWindow)) {
		return "", false
	}
	return e.sha, true
}

// save writes the digests of files; failures are ignored (the cache only
// saves time).
func (c *hashCache) save(files []localFile) {
	if c.path == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".hashes-*")
	if err != nil {
		return
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	fmt.Fprintf(w, "sitefleet-hashes 2 %d\n", time.Now().UnixNano())
	for _, f := range files {
		fi := f.info
		if fi == nil || strings.ContainsAny(f.entry.Path, "\t\n") {
			continue
		}
		fmt.Fprintf(w, "%d\t%d\t%d\t%s\t%s\n", fi.Size(), fi.ModTime().UnixNano(), changeTime(fi).UnixNano(), f.entry.SHA256, f.entry.Path)
	}
	if w.Flush() != nil || tmp.Close() != nil {
		return
	}
	_ = os.Rename(tmp.Name(), c.path)
}
