// Package acmetest runs pebble, the ACME test server, in a test process on
// loopback, with a DNS server that resolves every name to 127.0.0.1 and a
// fault proxy in front of the HTTP port its validation authority connects
// to.
package acmetest

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"github.com/sitefleet/sitefleet/internal/faultproxy"
)

// CA is pebble, the ACME test server, run in the test process on
// loopback. Its validation authority resolves every name to 127.0.0.1
// through a DNS server of the test's, and connects for HTTP-01 to the
// port of a fault proxy that the test points at one node's nginx.
type CA struct {
	URL    string // directory URL
	CAFile string // PEM of the directory's HTTPS certificate
	// Roots trusts the certificates the CA issues.
	Roots *x509.CertPool
	// Proxy carries the validation authority's HTTP-01 requests.
	Proxy     *faultproxy.Proxy
	Finalized atomic.Int64 // certificates issued
	Orders    atomic.Int64 // orders created
}

// Start starts the CA; its HTTP-01 requests go to httpTarget through
// Proxy. validity is the lifetime of the certificates it issues, in
// seconds (0: pebble's default of 90 days).
func Start(t testing.TB, httpTarget string, validity uint64) *CA {
	t.Helper()
	setenv(t, "PEBBLE_VA_NOSLEEP", "1")
	setenv(t, "PEBBLE_WFE_NONCEREJECT", "0")
	setenv(t, "PEBBLE_AUTHZREUSE", "100")
	c := &CA{}

	// DNS: every A question gets 127.0.0.1; nothing else has answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dnsSrv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(127, 0, 0, 1)})
			}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = dnsSrv.ActivateAndServe() }()
	t.Cleanup(func() { _ = dnsSrv.Shutdown() })

	proxy, err := faultproxy.Start(httpTarget)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	c.Proxy = proxy
	_, portStr, _ := net.SplitHostPort(proxy.Addr())
	port, _ := strconv.Atoi(portStr)

	logger := log.New(io.Discard, "", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default", ValidityPeriod: validity}})
	validator := va.New(logger, port, 0, false, ln.Addr().String(), store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 1, 1)
	acmeHandler := front.Handler()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		acmeHandler.ServeHTTP(rec, r)
		if r.Method == http.MethodPost && rec.status < 300 {
			switch {
			case strings.HasPrefix(r.URL.Path, "/finalize-order/"):
				c.Finalized.Add(1)
			case r.URL.Path == "/order-plz":
				c.Orders.Add(1)
			}
		}
	}))
	t.Cleanup(srv.Close)
	c.URL = srv.URL + wfe.DirectoryPath
	c.CAFile = filepath.Join(t.TempDir(), "pebble-https.pem")
	if err := os.WriteFile(c.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	c.Roots = x509.NewCertPool()
	c.Roots.AddCert(authority.GetRootCert(0).Cert)
	return c
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// setenv sets a variable pebble reads for the test's duration.
func setenv(t testing.TB, k, v string) {
	old, had := os.LookupEnv(k)
	if err := os.Setenv(k, v); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if had {
			_ = os.Setenv(k, old)
		} else {
			_ = os.Unsetenv(k)
		}
	})
}
