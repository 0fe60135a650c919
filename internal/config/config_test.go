package config

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/sitefleet/sitefleet/deploy"
)

func TestSampleConfigLoadsAndMatchesDefaults(t *testing.T) {
	cfg, err := Load(viper.New(), "../../config.sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
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
	_, err := Load(viper.New(), path)
	if err == nil || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("err = %v, want one naming the unknown key", err)
	}
	t.Setenv("SITEFLEET_STATE_ETCD_ADRESS", "x")
	_, err = Load(viper.New(), "")
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
	for _, client := range []string{"SITEFLEET_CACERT", "SITEFLEET_CERT", "SITEFLEET_KEY"} {
		t.Setenv(client, "/the/cli/reads/these") // not node keys, and not refused
	}
	cfg, err := Load(viper.New(), path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.EtcdEndpoints(); len(got) != 2 || got[1] != "http://host02:2379" {
		t.Errorf("endpoints = %v", got)
	}
	if cfg.State.Store != "etcd" || cfg.State.Etcd.KeyPrefix != "/fleet-a" || cfg.State.Etcd.Timeout != 2500 ||
		cfg.State.Etcd.TLSConfiguration.ClientKey != "/etc/k.pem" || cfg.NodeName != "edge-1" || !cfg.DisallowLeadership {
		t.Errorf("cfg = %+v", cfg)
	}
	if w := cfg.Warnings(); len(w) != 1 || !strings.Contains(w[0], "TLS is not used") {
		t.Errorf("warnings = %q, want one about TLS files with http endpoints", w)
	}
	if cfg.API.Listen != "127.0.0.1:9999" || strings.Join(cfg.API.Tokens, "|") != "one|two" {
		t.Errorf("env not applied: listen %q tokens %v", cfg.API.Listen, cfg.API.Tokens)
	}
}

func TestInvalidConfigValues(t *testing.T) {
	// want is a substring of the error naming the offending key, as
	// written in the configuration, so that a case whose YAML misspells
	// its key (refused as unknown, in viper's lower case) fails.
	for name, tc := range map[string]struct{ yaml, want string }{
		"store":                        {"state:\n  store: consul\n", "state.store"},
		"prefix":                       {"state:\n  etcd:\n    keyPrefix: nope\n", "state.etcd.keyPrefix"},
		"timeout":                      {"state:\n  etcd:\n    timeout: 0\n", "state.etcd.timeout"},
		"listen":                       {"api:\n  listen: nohostport\n", "api.listen"},
		"etcd without address":         {"state:\n  store: etcd\n", "state.etcd.address"},
		"etcd address not a URL":       {"state:\n  store: etcd\n  etcd:\n    address: host01:2379\n", "state.etcd.address"},
		"mixed schemes":                {"state:\n  store: etcd\n  etcd:\n    address: http://a:2379,https://b:2379\n", "state.etcd.address"},
		"lease ttl not whole seconds":  {"cluster:\n  leaseTTL: 1500ms\n", "cluster.leaseTTL"},
		"publish slower than ttl":      {"cluster:\n  leaseTTL: 2s\n  publishInterval: 3s\n", "cluster.publishInterval"},
		"https on the http port":       {"web:\n  httpListen: \":9000\"\n  httpsListen: \":9000\"\n", "web.httpsListen"},
		"renewal longer than life":     {"tls:\n  selfSignedValidity: 24h\n  renewBefore: 48h\n", "renewBefore"},
		"dh params too small":          {"tls:\n  dhParamBits: 64\n", "tls.dhParamBits"},
		"acme directory not https":     {"tls:\n  acme:\n    directoryURL: http://ca.example/dir\n", "tls.acme.directoryURL"},
		"acme email":                   {"tls:\n  acme:\n    email: not-an-address\n", "tls.acme.email"},
		"acme retry":                   {"tls:\n  acme:\n    retryMin: 1h\n    retryMax: 1m\n", "retryMax"},
		"public key not base64":        {"bundles:\n  publicKeys: [\"not a key\"]\n", "bundles.publicKeys[0]"},
		"public key wrong size":        {"bundles:\n  publicKeys: [\"" + testPublicKey(t) + "\", \"AAAA\"]\n", "bundles.publicKeys[1]"},
		"max txn ops below minimum":    {"state:\n  etcd:\n    maxTxnOps: 7\n", "state.etcd.maxTxnOps"},
		"max txn ops negative":         {"state:\n  etcd:\n    maxTxnOps: -5\n", "state.etcd.maxTxnOps"},
		"negative max body bytes":      {"api:\n  maxBodyBytes: -1\n", "api.maxBodyBytes"},
		"hooks attempts 0":             {"hooks:\n  maxAttempts: 0\n", "hooks: maxAttempts"},
		"hooks expiring 1m":            {"hooks:\n  expiringWithin: 1m\n", "expiringWithin"},
		"traffic max sites 0":          {"web:\n  traffic:\n    maxSites: 0\n", "web.traffic.maxSites"},
		"preview domain not a name":    {"previews:\n  domain: \"a b\"\n", "previews.domain"},
		"preview domain upper case":    {"previews:\n  domain: Previews.Test\n", "previews.domain"},
		"preview cert without domain":  {"previews:\n  certificate: x\n", "need previews.domain"},
		"preview cert bad id":          {"previews:\n  domain: p.test\n  certificate: \"../x\"\n", "previews.certificate"},
		"preview expiry 1s":            {"previews:\n  expires: 1s\n", "previews.expires"},
		"traffic json log relative":    {"web:\n  traffic:\n    jsonLog: logs/a.json\n", "web.traffic.jsonLog"},
		"traffic json log when off":    {"web:\n  traffic:\n    enabled: false\n    jsonLog: stdout\n", "web.traffic.jsonLog"},
		"idle timeout under 1s":        {"api:\n  idleTimeout: 10ms\n", "api.idleTimeout"},
		"no upload timeout":            {"api:\n  uploadTimeout: 0s\n", "api.uploadTimeout"},
		"no concurrent uploads":        {"api:\n  maxConcurrentUploads: 0\n", "api.maxConcurrentUploads"},
		"api tls without key":          {"api:\n  tls:\n    certificate: /x.pem\n", "api.tls.certificate and api.tls.key"},
		"api client CA without cert":   {"api:\n  tls:\n    clientCA: /ca.pem\n", "api.tls.clientCA"},
		"compaction without retention": {"cluster:\n  compactRetention: 0s\n", "cluster.compactInterval"},
		"memory limit too small":       {"memoryLimitBytes: 1000\n", "memoryLimitBytes"},
		"memory limit negative":        {"memoryLimitBytes: -2\n", "memoryLimitBytes"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(viper.New(), path)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestValidConfigEdgeValues(t *testing.T) {
	yaml := "state:\n  etcd:\n    maxTxnOps: 8\napi:\n  maxBodyBytes: 0\nbundles:\n  requireSignature: true\n  publicKeys: [\"" + testPublicKey(t) + "\"]\n"
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(viper.New(), path); err != nil {
		t.Fatal(err)
	}
}

// testPublicKey returns a valid bundle signing public key.
func testPublicKey(t *testing.T) string {
	t.Helper()
	pub, _, err := deploy.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// The node reads dataDir from SITEFLEET_DATA_DIR, the name the README
// documents for the client commands, as well as from SITEFLEET_DATADIR.
func TestDataDirEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("dataDir: /from/file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Setenv("SITEFLEET_DATA_DIR", dir)
	for _, p := range []string{"", path} {
		cfg, err := Load(viper.New(), p)
		if err != nil {
			t.Fatalf("config %q with SITEFLEET_DATA_DIR: %v", p, err)
		}
		if cfg.DataDir != dir {
			t.Errorf("config %q with SITEFLEET_DATA_DIR=%s: dataDir %q", p, dir, cfg.DataDir)
		}
	}
	// A flag bound to dataDir (the node's --data-dir) still wins over the
	// environment.
	flags := pflag.NewFlagSet("node", pflag.ContinueOnError)
	flags.String("data-dir", "", "")
	if err := flags.Set("data-dir", "/from/flag"); err != nil {
		t.Fatal(err)
	}
	v := viper.New()
	if err := v.BindPFlag("dataDir", flags.Lookup("data-dir")); err != nil {
		t.Fatal(err)
	}
	if cfg, err := Load(v, ""); err != nil || cfg.DataDir != "/from/flag" {
		t.Errorf("--data-dir with SITEFLEET_DATA_DIR: dataDir %q, err %v", cfg.DataDir, err)
	}
	t.Setenv("SITEFLEET_DATADIR", "/from/datadir")
	if cfg, err := Load(viper.New(), ""); err != nil || cfg.DataDir != "/from/datadir" {
		t.Errorf("SITEFLEET_DATADIR and SITEFLEET_DATA_DIR: dataDir %q, err %v, want SITEFLEET_DATADIR's", cfg.DataDir, err)
	}
}

// TestSecretsFromFiles checks the _FILE forms of the cluster key and the
// API tokens (Docker and Compose secrets): the file's content is the
// value, a list takes a value per line, and a missing, empty or oversized
// file, or both forms at once, is an error that names the variable and
// never the secret.
func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	t.Setenv("SITEFLEET_SECRETS_KEY_FILE", write("key", key+"\n"))
	t.Setenv("SITEFLEET_API_TOKENS_FILE", write("tokens", "first-token-0123456789abcdef\r\nsecond-token-0123456789abcdef\n"))
	cfg, err := Load(viper.New(), "")
	if err != nil {
		t.Fatalf("Load with _FILE variables: %v", err)
	}
	if cfg.Secrets.Key != key {
		t.Errorf("secrets.key %q, want the file's content without its newline", cfg.Secrets.Key)
	}
	if want := []string{"first-token-0123456789abcdef", "second-token-0123456789abcdef"}; !slices.Equal(cfg.API.Tokens, want) {
		t.Errorf("api.tokens %q, want %q", cfg.API.Tokens, want)
	}

	for name, tc := range map[string]struct {
		setup func(t *testing.T)
		want  string
	}{
		"missing file": {func(t *testing.T) { t.Setenv("SITEFLEET_SECRETS_KEY_FILE", filepath.Join(dir, "nope")) }, "SITEFLEET_SECRETS_KEY_FILE"},
		"empty file":   {func(t *testing.T) { t.Setenv("SITEFLEET_SECRETS_KEY_FILE", write("empty", "\n")) }, "is empty"},
		"huge file": {func(t *testing.T) {
			t.Setenv("SITEFLEET_API_TOKENS_FILE", write("huge", strings.Repeat("x", maxSecretFile+1)))
		}, "larger than"},
		"both forms": {func(t *testing.T) { t.Setenv("SITEFLEET_SECRETS_KEY", key) }, "both SITEFLEET_SECRETS_KEY and SITEFLEET_SECRETS_KEY_FILE"},
		"bad key":    {func(t *testing.T) { t.Setenv("SITEFLEET_SECRETS_KEY_FILE", write("bad", "not-a-key-secret")) }, "secrets.key"},
	} {
		t.Run(name, func(t *testing.T) {
			tc.setup(t)
			_, err := Load(viper.New(), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "not-a-key-secret") || strings.Contains(err.Error(), "first-token") {
				t.Errorf("the error shows a secret: %v", err)
			}
		})
	}
	// Only the secrets have _FILE forms: others stay unknown variables.
	t.Setenv("SITEFLEET_NODENAME_FILE", write("name", "n1"))
	if _, err := Load(viper.New(), ""); err == nil || !strings.Contains(err.Error(), "SITEFLEET_NODENAME_FILE") {
		t.Errorf("SITEFLEET_NODENAME_FILE: got %v, want an unknown-variable error", err)
	}
}
