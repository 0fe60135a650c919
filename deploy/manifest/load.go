package manifest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Manifest is what a bundle's _redirects and _headers files hold.
type Manifest struct {
	Redirects []Redirect
	Headers   []HeaderRule
}

// Load reads <root>/_redirects and <root>/_headers if present, returning
// the parsed manifest. A missing file is not an error. A directory, a
// symbolic link or anything but a regular file so named is a LineError
// with Line 0; a refused line is a LineError. root must be a directory.
func Load(root string, l Limits) (Manifest, error) {
	var m Manifest
	if err := checkRoot(root); err != nil {
		return Manifest{}, err
	}
	err := loadFile(root, RedirectsFile, func(r io.Reader) (err error) {
		m.Redirects, err = ParseRedirects(r, l)
		return err
	})
	if err != nil {
		return Manifest{}, err
	}
	err = loadFile(root, HeadersFile, func(r io.Reader) (err error) {
		m.Headers, err = ParseHeaders(r, l)
		return err
	})
	if err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// checkRoot returns an error if root is not a directory.
func checkRoot(root string) error {
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("manifest: bundle root: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("manifest: bundle root %s is not a directory", root)
	}
	return nil
}

// loadFile calls parse with root/name if it exists as a regular file.
func loadFile(root, name string, parse func(io.Reader) error) error {
	f, err := openRegular(root, name)
	if f == nil || err != nil {
		return err
	}
	defer f.Close()
	return parse(f)
}

// openRegular opens root/name without following a symbolic link. It
// returns nil, nil if the file does not exist.
func openRegular(root, name string) (*os.File, error) {
	path := filepath.Join(root, name)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegularError(name, fi.Mode())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return checkSameFile(f, fi, name)
}

// checkSameFile returns f if it is the file fi describes, in case the
// name was replaced between Lstat and Open; otherwise it closes f.
func checkSameFile(f *os.File, fi fs.FileInfo, name string) (*os.File, error) {
	got, err := f.Stat()
	if err == nil && os.SameFile(fi, got) {
		return f, nil
	}
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return nil, &LineError{File: name, Msg: "the file changed while it was opened"}
}

// notRegularError refuses a manifest name that is not a regular file.
func notRegularError(name string, mode fs.FileMode) *LineError {
	msg := "must be a regular file"
	switch {
	case mode.IsDir():
		msg += ", not a directory"
	case mode&fs.ModeSymlink != 0:
		msg += ", not a symbolic link"
	}
	return &LineError{File: name, Msg: msg}
}
