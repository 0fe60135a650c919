package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/sitefleet/sitefleet/internal/fsutil"
)

// The embedded member serves only this node: its client and peer
// listeners take TLS connections that present a client certificate from
// a CA of the node's own, generated at first start into a directory only
// the node's user can read (mode 0700, keys 0600). Another local user can
// reach the loopback port but cannot authenticate, and so can neither
// read nor write the state.

// Files of the embedded member's credentials, in EmbeddedCredentials.Dir.
const (
	credCA         = "ca.pem"
	credServer     = "server.pem"
	credServerKey  = "server-key.pem"
	credClient     = "client.pem"
	credClientKey  = "client-key.pem"
	credValidity   = 10 * 365 * 24 * time.Hour
	credRenewAhead = 30 * 24 * time.Hour
)

// EmbeddedCredentials are the PEM files of the embedded member's TLS.
type EmbeddedCredentials struct {
	Dir                   string
	CA                    string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
}

func credentialsIn(dir string) EmbeddedCredentials {
	return EmbeddedCredentials{
		Dir: dir, CA: filepath.Join(dir, credCA),
		ServerCert: filepath.Join(dir, credServer), ServerKey: filepath.Join(dir, credServerKey),
		ClientCert: filepath.Join(dir, credClient), ClientKey: filepath.Join(dir, credClientKey),
	}
}

// ensureCredentials returns the credentials kept in dir, generating them
// (a new CA, a server and a client certificate) when any is missing,
// unreadable, or expires within credRenewAhead. The directory is made
// mode 0700 either way.
func ensureCredentials(dir string) (EmbeddedCredentials, error) {
	c := credentialsIn(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return c, fmt.Errorf("embedded etcd credentials: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return c, fmt.Errorf("embedded etcd credentials: %w", err)
	}
	if c.valid(time.Now()) == nil {
		return c, nil
	}
	if err := c.generate(time.Now()); err != nil {
		return c, fmt.Errorf("embedded etcd credentials: %w", err)
	}
	return c, nil
}

// valid checks that both certificates load, chain to the CA and are not
// about to expire.
func (c EmbeddedCredentials) valid(now time.Time) error {
	caPEM, err := os.ReadFile(c.CA)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("no CA certificate")
	}
	for _, pair := range [][2]string{{c.ServerCert, c.ServerKey}, {c.ClientCert, c.ClientKey}} {
		kp, err := tls.LoadX509KeyPair(pair[0], pair[1])
		if err != nil {
			return err
		}
		leaf, err := x509.ParseCertificate(kp.Certificate[0])
		if err != nil {
			return err
		}
		if now.Add(credRenewAhead).After(leaf.NotAfter) {
			return errors.New("expires soon")
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: now}); err != nil {
			return err
		}
	}
	return nil
}

// generate writes a new CA and two certificates signed by it. The CA's
// key is not kept: the next renewal makes a new CA.
func (c EmbeddedCredentials) generate(now time.Time) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "sitefleet embedded etcd CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(credValidity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	issue := func(cn string, usage []x509.ExtKeyUsage, certFile, keyFile string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(credValidity),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
			return err
		}
		return fsutil.WriteFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	}
	// The member's certificate serves both its listeners and its own
	// connections to its peer listener.
	if err := issue("sitefleet embedded etcd", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, c.ServerCert, c.ServerKey); err != nil {
		return err
	}
	if err := issue("sitefleet node", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, c.ClientCert, c.ClientKey); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(c.CA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}
