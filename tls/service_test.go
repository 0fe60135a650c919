package tls

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

func newService(t *testing.T) (*Service, *state.Store, state.Guard) {
	t.Helper()
	e := etcdtest.New(t)
	cli := e.Client(t)
	store, err := state.NewStore(state.Options{Client: cli, Prefix: "/t", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(context.Background(), "/fence", "held"); err != nil {
		t.Fatal(err)
	}
	return &Service{Records: store, Sealer: testSealer(t)}, store, state.GuardOf(clientv3.Compare(clientv3.Value("/fence"), "=", "held"))
}

func testSealer(t *testing.T) *Sealer {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestServiceImport(t *testing.T) {
	svc, store, _ := newService(t)
	ctx := context.Background()
	chain, key, err := SelfSigned([]string{"a.test", "www.a.test"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := SelfSigned([]string{"a.test"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, id   string
		chain, key []byte
		domains    []string
		want       string
	}{
		{"bad id", "selfsigned-a", chain, key, nil, "reserved"},
		{"id with a slash", "a/b", chain, key, nil, "certificate id"},
		{"bad domain", "c1", chain, key, []string{"bad_domain!"}, "domain"},
		{"not covering", "c1", chain, key, []string{"b.test"}, "b.test"},
		{"key of another certificate", "c1", other, key, nil, "check:"},
		{"garbage", "c1", []byte("not pem"), key, nil, "certificate refused"},
	} {
		_, err := svc.Import(ctx, tc.id, tc.chain, tc.key, tc.domains)
		if state.ErrorCode(err) != state.Invalid || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want invalid naming %q", tc.name, err, tc.want)
		}
	}
	if certs, _ := store.ListCertificates(ctx); len(certs) != 0 {
		t.Fatalf("refused imports stored %d records", len(certs))
	}
	c, err := svc.Import(ctx, "c1", chain, key, []string{"A.test"})
	if err != nil {
		t.Fatal(err)
	}
	if c.KeySealed == "" || strings.Contains(c.KeySealed, "PRIVATE KEY") || bytes.Contains([]byte(c.ChainPEM), []byte("PRIVATE")) {
		t.Fatal("the stored record holds the clear key")
	}
	if err := svc.CheckRecords([]state.Certificate{c}); err != nil {
		t.Fatalf("own record: %v", err)
	}
	foreign := &Service{Records: store, Sealer: testSealer(t)}
	if err := foreign.CheckRecords([]state.Certificate{c}); state.ErrorCode(err) != state.Invalid || !strings.Contains(err.Error(), "another cluster key") {
		t.Fatalf("record of another cluster: %v", err)
	}
}

func TestServicePending(t *testing.T) {
	svc, store, guard := newService(t)
	ctx := context.Background()
	for name, st := range map[string]string{"a.test": "pending", "b.test": "failed", "c.test": "issued", "d.test": "pending"} {
		b := []byte(`{"name":"` + name + `","state":"` + st + `"}`)
		if err := store.PutACMEStatus(ctx, name, b, guard); err != nil {
			t.Fatal(err)
		}
	}
	have := []state.Certificate{{ID: state.AutoCertID(state.CertACME, "d.test")}}
	got, err := svc.Pending(ctx, have)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range got {
		names = append(names, st.Name+"="+st.State)
	}
	if strings.Join(names, ",") != "a.test=pending,b.test=failed" {
		t.Fatalf("pending = %v, want a.test pending and b.test failed (c.test issued, d.test has its certificate)", names)
	}
}
