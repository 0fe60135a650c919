package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// APITLSConfig turns on HTTPS for the API.
type APITLSConfig struct {
	// Certificate and Key are PEM files of the API's certificate chain and
	// key; both or neither. They are read again when they change, so a
	// renewed certificate needs no restart.
	Certificate string `mapstructure:"certificate"`
	Key         string `mapstructure:"key"`
	// ClientCA, when set, is a PEM file of the CA whose client
	// certificates the API requires, besides a token. Nodes present their
	// own API certificate to each other.
	ClientCA string `mapstructure:"clientCA"`
	// CA is a PEM file of the CA that signed the other nodes' API
	// certificates, trusted besides the system's roots.
	CA string `mapstructure:"ca"`
}

// Enabled reports whether the API serves HTTPS.
func (t APITLSConfig) Enabled() bool { return t.Certificate != "" }

func (t APITLSConfig) validate() error {
	if (t.Certificate == "") != (t.Key == "") {
		return errors.New("api.tls.certificate and api.tls.key must be set together")
	}
	if t.ClientCA != "" && t.Certificate == "" {
		return errors.New("api.tls.clientCA needs api.tls.certificate and key: nodes present them to each other")
	}
	return nil
}

// ServerTLS returns the API server's TLS configuration, or nil when TLS
// is off. It loads every file once to report errors at start.
func (t APITLSConfig) ServerTLS() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	kp, err := newKeyPairLoader(t.Certificate, t.Key)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return kp.get() }}
	if t.ClientCA != "" {
		pool, err := readPool(t.ClientCA, "api.tls.clientCA", false)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientTLS returns the TLS configuration for reaching other nodes' APIs:
// the system's roots plus CA, and this node's certificate as a client
// certificate when there is one. It is nil when there is nothing to add.
func (t APITLSConfig) ClientTLS() (*tls.Config, error) {
	if t.CA == "" && !t.Enabled() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CA != "" {
		pool, err := readPool(t.CA, "api.tls.ca", true)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if t.Enabled() {
		kp, err := newKeyPairLoader(t.Certificate, t.Key)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.get() }
	}
	return cfg, nil
}

func readPool(file, what string, system bool) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	pool := x509.NewCertPool()
	if system {
		if sys, err := x509.SystemCertPool(); err == nil {
			pool = sys
		}
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate found in %s", what, file)
	}
	return pool, nil
}

// keyPairLoader serves a certificate and key from files, loading them
// again when either changes (checked at most every reloadCheck).
type keyPairLoader struct {
	cert, key string
	mu        sync.Mutex
	pair      *tls.Certificate
	stamp     string
	checked   time.Time
}

const reloadCheck = 10 * time.Second

func newKeyPairLoader(cert, key string) (*keyPairLoader, error) {
	l := &keyPairLoader{cert: cert, key: key}
	if _, err := l.get(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *keyPairLoader) get() (*tls.Certificate, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pair != nil && time.Since(l.checked) < reloadCheck {
		return l.pair, nil
	}
	l.checked = time.Now()
	stamp := ""
	for _, f := range []string{l.cert, l.key} {
		fi, err := os.Stat(f)
		if err != nil {
			if l.pair != nil {
				return l.pair, nil // keep serving what was loaded
			}
			return nil, fmt.Errorf("api tls: %w", err)
		}
		stamp += fmt.Sprint(fi.ModTime().UnixNano(), fi.Size(), ";")
	}
	if l.pair != nil && stamp == l.stamp {
		return l.pair, nil
	}
	pair, err := tls.LoadX509KeyPair(l.cert, l.key)
	if err != nil {
		if l.pair != nil {
			return l.pair, nil
		}
		return nil, fmt.Errorf("api tls: load %s and %s: %w", l.cert, l.key, err)
	}
	l.pair, l.stamp = &pair, stamp
	return l.pair, nil
}
