package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

// readableAs reports whether uid:gid can read file.
func readableAs(t *testing.T, uid, gid uint32, file string) bool {
	t.Helper()
	cmd := exec.Command("cat", file)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{gid}}}
	return cmd.Run() == nil
}

// workerUIDs returns the real user IDs of the children of nginx's master.
func workerUIDs(t *testing.T, pidFile string) []uint32 {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return nil // nginx not started yet
	}
	master := strings.TrimSpace(string(b))
	entries, _ := os.ReadDir("/proc")
	var uids []uint32
	for _, e := range entries {
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil || !strings.Contains(string(status), "\nPPid:\t"+master+"\n") {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if rest, ok := strings.CutPrefix(line, "Uid:\t"); ok {
				uid, _ := strconv.Atoi(strings.Fields(rest)[0])
				uids = append(uids, uint32(uid))
			}
		}
	}
	return uids
}

// As root, nginx workers run as a user of their own that cannot read the
// node's secrets; TLS keys are readable by that user's group and root
// only, not by other users such as nobody.
func TestWorkersCannotReadSecrets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("workers switch users only when the node runs as root")
	}
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	n := startNode(t, cfg)
	if _, err := n.api.PutSite(context.Background(), state.Site{Domain: "keys.test", TLS: &state.SiteTLS{Mode: state.TLSSelfSigned}}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	var keyFiles []string
	n.eventually("a TLS key is written", 30*time.Second, func() error {
		all, _ := filepath.Glob(filepath.Join(cfg.DataDir, "tls", "*key*"))
		// Not the temporary files a key is written to before its rename.
		keyFiles = slices.DeleteFunc(all, func(f string) bool { return strings.HasPrefix(filepath.Base(f), ".") })
		if len(keyFiles) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	u, err := user.Lookup(WorkerUser)
	if err != nil {
		t.Fatalf("worker user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// A worker just forked (the site's config was reloaded a moment ago)
	// is root until it has switched users: every worker must have.
	n.eventually("every nginx worker runs as "+WorkerUser, 10*time.Second, func() error {
		uids := workerUIDs(t, filepath.Join(cfg.DataDir, "nginx", "run", "nginx.pid"))
		if len(uids) == 0 {
			return errors.New("no nginx workers found")
		}
		for _, w := range uids {
			if w != uint32(uid) {
				return fmt.Errorf("an nginx worker runs as uid %d, not %s (%d)", w, WorkerUser, uid)
			}
		}
		return nil
	})
	secrets := []string{cfg.TokenPath(), filepath.Join(cfg.DataDir, "lock")}
	if _, err := os.Stat(cfg.SecretsKeyPath()); err == nil {
		secrets = append(secrets, cfg.SecretsKeyPath())
	}
	for _, f := range secrets {
		if readableAs(t, uint32(uid), uint32(gid), f) {
			t.Errorf("the workers' user can read %s", f)
		}
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	nuid, _ := strconv.Atoi(nobody.Uid)
	ngid, _ := strconv.Atoi(nobody.Gid)
	for _, f := range keyFiles {
		if !readableAs(t, uint32(uid), uint32(gid), f) {
			t.Errorf("the workers cannot read the TLS key %s", f)
		}
		if readableAs(t, uint32(nuid), uint32(ngid), f) {
			t.Errorf("nobody can read the TLS key %s", f)
		}
	}
	// And they still serve: the data directory is reachable to them.
	n.waitServed("keys.test")
}
