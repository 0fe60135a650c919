// Package deploy is a node's local store of app bundles, the safe reader
// of their archives, and bundle signatures. It knows nothing of etcd or
// HTTP.
//
// # Bundles
//
// A bundle is an archive (.tar.gz, .tar or .zip, told apart by magic
// bytes, never by name) of a built static site, identified by the
// lower-case hex SHA-256 of the archive bytes.
//
// # Layout on disk
//
// A Store owns one directory:
//
//	<dir>/<sha>/         the extracted tree, served by nginx (dirs 0755, files 0644)
//	<dir>/<sha>.archive  the archive bytes, sent to peers that fetch the bundle
//	<dir>/<sha>.json     the bundle's Info
//	<dir>/tmp/           incoming archives, staging trees, bundles being removed
//
// # The commit point
//
// Ingest writes the archive to tmp/, hashes it, extracts it into a fresh
// staging directory in tmp/, flushes everything to disk, renames
// <sha>.json and <sha>.archive into place, and finally renames the
// staging directory to <sha>/. That last rename is the commit point: a
// bundle exists (Has, List, Info, Open) only once its directory does, so
// an extraction that failed or was interrupted is never taken for a
// complete one. Remove renames the directory back into tmp/ before it
// deletes anything. OpenStore empties tmp/ and deletes archive and info
// files left without a directory, so a crash at any point leaves no
// debris after the next start.
//
// # Safety rules of extraction
//
//   - Only regular files and directories. Symbolic and hard links,
//     devices, FIFOs, sparse files and every other entry type are refused
//     with an *EntryError naming the entry; so are encrypted zip entries.
//   - Names must be valid UTF-8 without NUL, control characters or
//     backslashes; not absolute ("/x", "C:x"); without any ".." element
//     (refused, never cleaned); no longer than Limits.MaxPathLength
//     (a *LimitError), with elements of at most 255 bytes. One leading
//     "./" is stripped, and one trailing "/" of a directory; a directory
//     named "", "." or "./" is the root and is skipped. Any other name
//     that path.Clean would change ("a//b", "a/./b") is refused.
//   - A path may appear once: a file twice, a file and a directory, or a
//     directory listed twice is a "duplicate entry". A directory created
//     as the parent of an earlier entry may be listed later.
//   - Files are created with os.Root (no write can leave the staging
//     directory, whatever the checks above missed) and O_EXCL; their mode
//     is 0644 and directories' 0755, whatever the archive says. Owners,
//     times and modes in the archive are ignored.
//   - Limits: the archive is read up to MaxArchiveBytes+1 bytes; the
//     bytes actually decompressed (not the sizes an archive declares)
//     count against MaxUnpackedBytes, so a decompression bomb stops at
//     the limit; every file and directory created counts against
//     MaxFiles, and a zip's central directory is counted before it is
//     parsed.
//   - Every file is read to its end, so a corrupt gzip stream (CRC,
//     length), a truncated tar or a zip entry with a bad CRC is a
//     *FormatError.
//
// # Signatures
//
// A bundle signature is Ed25519 over the 32-byte SHA-256 digest of the
// archive. Keys and signatures travel as standard base64; KeyID names a
// public key.
package deploy
