package deploy

import (
	"syscall"
	"testing"
)

// TestIngestModesIgnoreUmask checks that a restrictive umask does not make
// the tree unreadable for nginx's workers.
func TestIngestModesIgnoreUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	b := goodArchives(t)[FormatZip]
	e := newTestEnv(t, Limits{})
	info, err := e.ingestBytes(t, b)
	if err != nil {
		t.Fatal(err)
	}
	checkStored(t, e, info, wantInfo(FormatZip, b), b)
}
