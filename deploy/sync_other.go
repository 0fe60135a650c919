//go:build !linux

package deploy

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// flushToDisk makes the files and directories under paths durable before
// a rename publishes them: it fsyncs each of them.
func flushToDisk(paths ...string) error {
	for _, p := range paths {
		err := filepath.WalkDir(p, func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return syncPath(name)
		})
		if err != nil {
			return fmt.Errorf("flush %s: %w", p, err)
		}
	}
	return nil
}

// syncPath fsyncs one file or directory.
func syncPath(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
