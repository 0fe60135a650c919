package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/sitefleet/sitefleet/internal/testutil"
)

func openEmbedded(t *testing.T, dataDir string) (*Etcd, EtcdOptions) {
	t.Helper()
	opts := EtcdOptions{Store: StoreEmbedded, DataDir: dataDir, Name: "n1", Timeout: 5 * time.Second,
		ClientListen: testutil.FreeAddr(t), PeerListen: testutil.FreeAddr(t)}
	e, err := OpenEtcd(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, opts
}

// tryEtcd reaches endpoint with tlsCfg (nil: plain) and returns the error
// of a write.
func tryEtcd(endpoint string, tlsCfg *tls.Config) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: tlsCfg, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = cli.Put(ctx, "/sitefleet/auth/tokens/intruder", "{}")
	return err
}

// The embedded member takes only clients that present the node's client
// certificate; its credentials are readable by the node's user alone.
func TestEmbeddedEtcdRefusesOtherClients(t *testing.T) {
	e, opts := openEmbedded(t, filepath.Join(t.TempDir(), "etcd"))
	if _, err := e.Client.Put(context.Background(), "/k", "v"); err != nil {
		t.Fatalf("the node's own client: %v", err)
	}
	creds := e.Credentials()
	if fi, err := os.Stat(creds.Dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("credentials directory: %v %v", fi.Mode(), err)
	}
	for _, f := range []string{creds.ServerKey, creds.ClientKey} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	caPEM, err := os.ReadFile(creds.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	for name, attempt := range map[string]func() error{
		"plain http":                func() error { return tryEtcd("http://"+opts.ClientListen, nil) },
		"TLS without a certificate": func() error { return tryEtcd("https://"+opts.ClientListen, &tls.Config{RootCAs: pool}) },
		"TLS, not verifying, no certificate": func() error {
			return tryEtcd("https://"+opts.ClientListen, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the attacker's choice
		},
		"the peer port": func() error { return tryEtcd("https://"+opts.PeerListen, &tls.Config{RootCAs: pool}) },
	} {
		if err := attempt(); err == nil {
			t.Errorf("%s: a write succeeded", name)
		}
	}
	resp, err := e.Client.Get(context.Background(), "/sitefleet/auth/tokens/intruder")
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("an intruder's write landed: %v %v", resp, err)
	}
}

// Run as another local user (nobody), a process can neither read the
// credentials nor write to the member. Needs root to switch users.
func TestEmbeddedEtcdRefusesAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as another user")
	}
	e, opts := openEmbedded(t, filepath.Join(testutil.WorldReadableTempDir(t), "etcd"))
	exe := filepath.Join(testutil.WorldReadableTempDir(t), "cluster.test")
	if err := copyFile(os.Args[0], exe); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run", "^TestIntruderHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "SITEFLEET_INTRUDER_ENDPOINT="+opts.ClientListen, "SITEFLEET_INTRUDER_CREDS="+e.Credentials().Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "intruder refused") {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
}

// TestIntruderHelper is what TestEmbeddedEtcdRefusesAnotherUser runs as
// another user; on its own it does nothing.
func TestIntruderHelper(t *testing.T) {
	endpoint, dir := os.Getenv("SITEFLEET_INTRUDER_ENDPOINT"), os.Getenv("SITEFLEET_INTRUDER_CREDS")
	if endpoint == "" {
		return
	}
	creds := credentialsIn(dir)
	for _, f := range []string{creds.ClientKey, creds.ServerKey, creds.CA} {
		if _, err := os.ReadFile(f); !errors.Is(err, os.ErrPermission) {
			t.Fatalf("reading %s as uid %d: %v", f, os.Getuid(), err)
		}
	}
	if err := tryEtcd("http://"+endpoint, nil); err == nil {
		t.Fatal("a plain write succeeded")
	}
	if err := tryEtcd("https://"+endpoint, &tls.Config{InsecureSkipVerify: true}); err == nil { //nolint:gosec // the attacker's choice
		t.Fatal("a TLS write without a certificate succeeded")
	}
	fmt.Println("intruder refused")
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// A member created before the embedded etcd used TLS keeps its data.
func TestEmbeddedEtcdUpgradesFromPlainHTTP(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "etcd")
	clientAddr, peerAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = "n1", dataDir
	cu, pu := url.URL{Scheme: "http", Host: clientAddr}, url.URL{Scheme: "http", Host: peerAddr}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	old, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	<-old.Server.ReadyNotify()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + clientAddr}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(context.Background(), "/kept", "yes"); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	old.Close()

	e, err := OpenEtcd(context.Background(), EtcdOptions{Store: StoreEmbedded, DataDir: dataDir, Name: "n1", Timeout: 5 * time.Second, ClientListen: clientAddr, PeerListen: peerAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	resp, err := e.Client.Get(context.Background(), "/kept")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("after the upgrade: %v %v", resp, err)
	}
	if _, err := e.Client.Put(context.Background(), "/new", "yes"); err != nil {
		t.Fatalf("a write after the upgrade: %v", err)
	}
}

// The embedded member is defragmented once compaction has freed much of
// its file, and only then.
func TestEmbeddedDefragmentsWhenWorthwhile(t *testing.T) {
	e, _ := openEmbedded(t, filepath.Join(t.TempDir(), "etcd"))
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := e.defragIfWorthwhile(ctx, log); err != nil || e.Defrags() != 0 {
		t.Fatalf("a new member was defragmented: %d %v", e.Defrags(), err)
	}
	value := strings.Repeat("x", 1<<20)
	for i := range 48 {
		if _, err := e.Client.Put(ctx, fmt.Sprintf("/big/%d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := e.Client.Delete(ctx, "/big/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	before, err := e.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.defragIfWorthwhile(ctx, log); err != nil || e.Defrags() != 1 {
		t.Fatalf("after freeing %d bytes: %d defragmentations, %v", before.DBSize-before.DBSizeInUse, e.Defrags(), err)
	}
	after, err := e.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.DBSize >= before.DBSize/2 || after.Quota != defaultQuota {
		t.Fatalf("database %d -> %d bytes, quota %d", before.DBSize, after.DBSize, after.Quota)
	}
}
