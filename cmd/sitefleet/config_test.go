package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/viper"
)

func TestSampleConfigLoadsAndMatchesDefaults(t *testing.T) {
	cfg, err := loadConfig(viper.New(), "../../config.sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def := defaultConfig()
	cfg.DataDir, def.DataDir = "", "" // the sample shows root's default
	got, want := flatten(cfg), flatten(def)
	for k, v := range want {
		if g := got[k]; fmt.Sprint(g) != fmt.Sprint(v) {
			t.Errorf("config.sample.yaml %s = %v, default is %v", k, g, v)
		}
	}
}

func TestUnknownKeysAreErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte("state:\n  etcd:\n    adress: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(viper.New(), path)
	if err == nil || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("err = %v, want one naming the unknown key", err)
	}
	t.Setenv("SITEFLEET_STATE_ETCD_ADRESS", "x")
	_, err = loadConfig(viper.New(), "")
	if err == nil || !strings.Contains(err.Error(), "SITEFLEET_STATE_ETCD_ADRESS") {
		t.Fatalf("err = %v, want one naming the unknown variable", err)
	}
}

func TestLegacyClusteringBlockAndEnv(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	legacy := `state:
  store: "etcd"
  etcd:
    keyPrefix: "/fleet-a"
    timeout: 2500
    address: "http://host01:2379,http://host02:2379"
    tlsConfiguration: { ca: "/etc/ca.pem", clientCertificate: "/etc/c.pem", clientKey: "/etc/k.pem" }
    tlsSkipVerify: false
nodeName: "edge-1"
disallowLeadership: true
`
	if err := os.WriteFile(path, []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SITEFLEET_API_LISTEN", "127.0.0.1:9999")
	t.Setenv("SITEFLEET_API_TOKENS", "one,two")
	cfg, err := loadConfig(viper.New(), path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.etcdEndpoints(); len(got) != 2 || got[1] != "http://host02:2379" {
		t.Errorf("endpoints = %v", got)
	}
	if cfg.State.Store != "etcd" || cfg.State.Etcd.KeyPrefix != "/fleet-a" || cfg.State.Etcd.Timeout != 2500 ||
		cfg.State.Etcd.TLSConfiguration.ClientKey != "/etc/k.pem" || cfg.NodeName != "edge-1" || !cfg.DisallowLeadership {
		t.Errorf("cfg = %+v", cfg)
	}
	if w := cfg.warnings(); len(w) != 1 || !strings.Contains(w[0], "TLS is not used") {
		t.Errorf("warnings = %q, want one about TLS files with http endpoints", w)
	}
	if cfg.API.Listen != "127.0.0.1:9999" || strings.Join(cfg.API.Tokens, "|") != "one|two" {
		t.Errorf("env not applied: listen %q tokens %v", cfg.API.Listen, cfg.API.Tokens)
	}
}

func TestInvalidConfigValues(t *testing.T) {
	for name, yaml := range map[string]string{
		"store":                       "state:\n  store: consul\n",
		"prefix":                      "state:\n  etcd:\n    keyPrefix: nope\n",
		"timeout":                     "state:\n  etcd:\n    timeout: 0\n",
		"listen":                      "api:\n  listen: nohostport\n",
		"etcd without address":        "state:\n  store: etcd\n",
		"etcd address not a URL":      "state:\n  store: etcd\n  etcd:\n    address: host01:2379\n",
		"mixed schemes":               "state:\n  store: etcd\n  etcd:\n    address: http://a:2379,https://b:2379\n",
		"lease ttl not whole seconds": "cluster:\n  leaseTTL: 1500ms\n",
		"publish slower than ttl":     "cluster:\n  leaseTTL: 2s\n  publishInterval: 3s\n",
		"https on the http port":      "web:\n  httpListen: \":9000\"\n  httpsListen: \":9000\"\n",
		"renewal longer than life":    "tls:\n  selfSignedValidity: 24h\n  renewBefore: 48h\n",
		"dh params too small":         "tls:\n  dhParamBits: 64\n",
		"acme directory not https":    "tls:\n  acme:\n    directoryURL: http://ca.example/dir\n",
		"acme email":                  "tls:\n  acme:\n    email: not-an-address\n",
		"acme retry":                  "tls:\n  acme:\n    retryMin: 1h\n    retryMax: 1m\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := loadConfig(viper.New(), path); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
