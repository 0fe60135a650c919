// Package config is a node's configuration: its keys and defaults (config.sample.yaml
// documents every one), loading from a YAML file, SITEFLEET_* variables and
// flags through viper, and validation with errors that name the key.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/sitefleet/sitefleet/cluster"
	"github.com/sitefleet/sitefleet/deploy"
	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
)

// envPrefix prefixes every environment variable sitefleet reads.
const envPrefix = "SITEFLEET"

// clientEnv are the environment variables of the CLI's client commands,
// which are not node configuration keys.
var clientEnv = []string{"SITEFLEET_SERVER", "SITEFLEET_TOKEN", "SITEFLEET_CONFIG", "SITEFLEET_CACERT", "SITEFLEET_CERT", "SITEFLEET_KEY"}

// envAliases are further environment variables that set a configuration
// key (viper's lower-case name), beside the one AutomaticEnv derives from
// it, which takes precedence. SITEFLEET_DATA_DIR is the name the README
// documents; SITEFLEET_DATADIR is the derived one.
var envAliases = map[string][]string{"datadir": {"SITEFLEET_DATA_DIR"}}

// fileEnvKeys are the secrets that can also be given as a file: the
// variable with "_FILE" appended names a file whose content (less one
// trailing newline) is the value, as Docker and Compose secrets and
// Kubernetes mounts provide them. A list takes one value per line.
var fileEnvKeys = []string{"secrets.key", "api.tokens"}

// maxSecretFile bounds what a _FILE variable's file may hold.
const maxSecretFile = 64 << 10

// minTxnOps is the smallest state.etcd.maxTxnOps state.NewStore accepts.
const minTxnOps = 8

// Config is a node's whole configuration. config.sample.yaml documents
// every key.
type Config struct {
	DataDir            string       `mapstructure:"dataDir"`
	NodeName           string       `mapstructure:"nodeName"`
	DisallowLeadership bool         `mapstructure:"disallowLeadership"`
	MemoryLimitBytes   int64        `mapstructure:"memoryLimitBytes"`
	State              StateConfig  `mapstructure:"state"`
	API                APIConfig    `mapstructure:"api"`
	Web                WebConfig    `mapstructure:"web"`
	Cluster            ClusterCfg   `mapstructure:"cluster"`
	Bundles            BundlesCfg   `mapstructure:"bundles"`
	Secrets            SecretsCfg   `mapstructure:"secrets"`
	TLS                CertsCfg     `mapstructure:"tls"`
	Reconcile          ReconcileCfg `mapstructure:"reconcile"`
	Shutdown           ShutdownCfg  `mapstructure:"shutdown"`
	Hooks              HooksCfg     `mapstructure:"hooks"`
	Previews           PreviewsCfg  `mapstructure:"previews"`
	Log                LogConfig    `mapstructure:"log"`
}

// PreviewsCfg configures deploy previews. Every node of a fleet needs
// the same.
type PreviewsCfg struct {
	// Domain is the preview domain; "" turns previews off.
	Domain string `mapstructure:"domain"`
	// Certificate is the ID of an imported certificate for *.<Domain>.
	Certificate string `mapstructure:"certificate"`
	// SelfSigned, without Certificate, serves previews over HTTPS with a
	// certificate each node makes itself.
	SelfSigned bool `mapstructure:"selfSigned"`
	// Expires is how long a preview deployed without --expires lives; 0
	// keeps it until it is removed.
	Expires time.Duration `mapstructure:"expires"`
}

// HooksCfg tunes webhook deliveries (package hooks).
type HooksCfg struct {
	MaxAttempts    int           `mapstructure:"maxAttempts"`
	DeployTimeout  time.Duration `mapstructure:"deployTimeout"`
	ExpiringWithin time.Duration `mapstructure:"expiringWithin"`
}

// ShutdownCfg configures how a node stops.
type ShutdownCfg struct {
	// Drain is how long a node that was asked to stop (SIGTERM, SIGINT)
	// keeps serving while its readiness checks fail, so that balancers
	// take it out of rotation first; a second signal stops it at once.
	Drain time.Duration `mapstructure:"drain"`
}

// StateConfig chooses and configures the state store.
type StateConfig struct {
	Store    string         `mapstructure:"store"`
	Etcd     EtcdConfig     `mapstructure:"etcd"`
	Embedded EmbeddedConfig `mapstructure:"embedded"`
}

// EtcdConfig is the clustering block of the system sitefleet replaces,
// kept as it was, plus maxTxnOps.
type EtcdConfig struct {
	KeyPrefix        string    `mapstructure:"keyPrefix"`
	Timeout          int       `mapstructure:"timeout"` // milliseconds
	Address          string    `mapstructure:"address"`
	TLSConfiguration TLSConfig `mapstructure:"tlsConfiguration"`
	TLSSkipVerify    bool      `mapstructure:"tlsSkipVerify"`
	MaxTxnOps        int       `mapstructure:"maxTxnOps"`
}

// TLSConfig holds the files for TLS to etcd.
type TLSConfig struct {
	CA                string `mapstructure:"ca"`
	ClientCertificate string `mapstructure:"clientCertificate"`
	ClientKey         string `mapstructure:"clientKey"`
}

// EmbeddedConfig configures the embedded etcd member.
type EmbeddedConfig struct {
	ClientListen string `mapstructure:"clientListen"`
	PeerListen   string `mapstructure:"peerListen"`
	// QuotaBytes is the member's backend quota (0: etcd's 2 GiB).
	QuotaBytes int64 `mapstructure:"quotaBytes"`
}

// APIConfig configures the management API.
type APIConfig struct {
	Listen       string   `mapstructure:"listen"`
	Advertise    string   `mapstructure:"advertise"`
	Tokens       []string `mapstructure:"tokens"`
	MaxBodyBytes int64    `mapstructure:"maxBodyBytes"`
	// Connection and request limits; see api.NewServer.
	IdleTimeout          time.Duration `mapstructure:"idleTimeout"`
	RequestTimeout       time.Duration `mapstructure:"requestTimeout"`
	UploadTimeout        time.Duration `mapstructure:"uploadTimeout"`
	MaxConcurrentUploads int           `mapstructure:"maxConcurrentUploads"`
	// The audit trail keeps at most AuditKeep entries, none older than
	// AuditMaxAge.
	AuditKeep   int           `mapstructure:"auditKeep"`
	AuditMaxAge time.Duration `mapstructure:"auditMaxAge"`
	// TLS turns on HTTPS for the API.
	TLS APITLSConfig `mapstructure:"tls"`
}

// WebConfig configures what nginx listens on and how it is run.
type WebConfig struct {
	HTTPListen  string      `mapstructure:"httpListen"`
	HTTPSListen string      `mapstructure:"httpsListen"`
	Resolvers   []string    `mapstructure:"resolvers"`
	Nginx       NginxConfig `mapstructure:"nginx"`
	Traffic     TrafficCfg  `mapstructure:"traffic"`
}

// TrafficCfg configures per-site traffic metrics and the JSON access log.
type TrafficCfg struct {
	Enabled  bool   `mapstructure:"enabled"`
	MaxSites int    `mapstructure:"maxSites"`
	JSONLog  string `mapstructure:"jsonLog"`
}

// maxTrafficSites bounds web.traffic.maxSites: each site is about a dozen
// series.
const maxTrafficSites = 100000

// NginxConfig configures the nginx process.
type NginxConfig struct {
	Manage               bool     `mapstructure:"manage"`
	Binary               string   `mapstructure:"binary"`
	Prefix               string   `mapstructure:"prefix"`
	ReloadCommand        []string `mapstructure:"reloadCommand"`
	User                 string   `mapstructure:"user"`
	WorkerProcesses      string   `mapstructure:"workerProcesses"`
	AccessLog            string   `mapstructure:"accessLog"`
	ExtraHTTPConfigFiles []string `mapstructure:"extraHttpConfigFiles"`
}

// ClusterCfg tunes membership and leader election.
type ClusterCfg struct {
	LeaseTTL        time.Duration `mapstructure:"leaseTTL"`
	PublishInterval time.Duration `mapstructure:"publishInterval"`
	MemberRetention time.Duration `mapstructure:"memberRetention"`
	// The leader compacts etcd's history every CompactInterval (0: never)
	// to the revision of CompactRetention before.
	CompactInterval  time.Duration `mapstructure:"compactInterval"`
	CompactRetention time.Duration `mapstructure:"compactRetention"`
}

// SecretsCfg holds the cluster key that seals private keys in etcd.
type SecretsCfg struct {
	Key string `mapstructure:"key"`
}

// CertsCfg configures the certificates the leader obtains and the DH
// parameters it generates.
type CertsCfg struct {
	SelfSignedValidity time.Duration `mapstructure:"selfSignedValidity"`
	RenewBefore        time.Duration `mapstructure:"renewBefore"`
	DHParamBits        int           `mapstructure:"dhParamBits"`
	DHParamMaxAge      time.Duration `mapstructure:"dhParamMaxAge"`
	ACME               ACMECfg       `mapstructure:"acme"`
}

// ACMECfg configures the ACME CA the leader obtains certificates from.
type ACMECfg struct {
	DirectoryURL string `mapstructure:"directoryURL"`
	Email        string `mapstructure:"email"`
	// CACertificates is a PEM file of roots trusted for the directory's
	// HTTPS, beside the system's (for a private CA).
	CACertificates string        `mapstructure:"caCertificates"`
	RetryMin       time.Duration `mapstructure:"retryMin"`
	RetryMax       time.Duration `mapstructure:"retryMax"`
}

// BundlesCfg configures app bundles.
type BundlesCfg struct {
	RequireSignature   bool          `mapstructure:"requireSignature"`
	PublicKeys         []string      `mapstructure:"publicKeys"`
	MinReplicas        int           `mapstructure:"minReplicas"`
	ReplicationTimeout time.Duration `mapstructure:"replicationTimeout"`
	MaxArchiveBytes    int64         `mapstructure:"maxArchiveBytes"`
	MaxUnpackedBytes   int64         `mapstructure:"maxUnpackedBytes"`
	MaxFiles           int           `mapstructure:"maxFiles"`
	MaxPathLength      int           `mapstructure:"maxPathLength"`
	KeepVersions       int           `mapstructure:"keepVersions"`
	GCInterval         time.Duration `mapstructure:"gcInterval"`
}

// ReconcileCfg tunes the reconcile loop; durations in milliseconds.
type ReconcileCfg struct {
	Quiescence int `mapstructure:"quiescence"`
	Resync     int `mapstructure:"resync"`
}

// LogConfig configures the node's log.
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// DefaultDrain is shutdown.drain by default: long enough for a balancer
// that checks every 5 s and needs 2 failures (HAProxy's "inter 5s fall 2",
// cloud balancers' faster settings) to take the node out of rotation.
const DefaultDrain = 15 * time.Second

// minMemoryLimit is the smallest memoryLimitBytes accepted: below it the
// node would collect garbage without pause.
const minMemoryLimit = 64 << 20

// Default returns the configuration used for keys nobody sets.
func Default() Config {
	return Config{
		DataDir: defaultDataDir(),
		State: StateConfig{
			Store: cluster.StoreEmbedded,
			Etcd:  EtcdConfig{KeyPrefix: state.DefaultPrefix, Timeout: 10000, MaxTxnOps: state.DefaultMaxTxnOps},
			Embedded: EmbeddedConfig{
				ClientListen: cluster.DefaultEmbeddedClientListen,
				PeerListen:   cluster.DefaultEmbeddedPeerListen,
			},
		},
		API: APIConfig{Listen: "127.0.0.1:7070", MaxBodyBytes: 8 << 20, IdleTimeout: 30 * time.Second, RequestTimeout: 60 * time.Second,
			UploadTimeout: 30 * time.Minute, MaxConcurrentUploads: 16, AuditKeep: 10000, AuditMaxAge: 90 * 24 * time.Hour},
		Web: WebConfig{
			HTTPListen:  ":8080",
			HTTPSListen: ":8443",
			Nginx:       NginxConfig{Manage: true, Binary: "nginx", WorkerProcesses: "auto"},
			Traffic:     TrafficCfg{Enabled: true, MaxSites: 1000},
		},
		Cluster: ClusterCfg{
			LeaseTTL:         cluster.DefaultTTL,
			PublishInterval:  cluster.DefaultPublishInterval,
			MemberRetention:  cluster.DefaultRetention,
			CompactInterval:  cluster.DefaultCompactInterval,
			CompactRetention: cluster.DefaultCompactRetention,
		},
		Bundles: BundlesCfg{
			ReplicationTimeout: 60 * time.Second,
			MaxArchiveBytes:    512 << 20,
			MaxUnpackedBytes:   2 << 30,
			MaxFiles:           100000,
			MaxPathLength:      1024,
			KeepVersions:       5,
			GCInterval:         time.Minute,
		},
		TLS: CertsCfg{
			SelfSignedValidity: 365 * 24 * time.Hour,
			RenewBefore:        30 * 24 * time.Hour,
			DHParamBits:        sftls.DefaultDHBits,
			DHParamMaxAge:      30 * 24 * time.Hour,
			ACME: ACMECfg{
				DirectoryURL: "https://acme-v02.api.letsencrypt.org/directory",
				RetryMin:     time.Minute,
				RetryMax:     24 * time.Hour,
			},
		},
		Reconcile: ReconcileCfg{Quiescence: 20, Resync: 300000},
		Shutdown:  ShutdownCfg{Drain: DefaultDrain},
		Hooks:     HooksCfg{MaxAttempts: 10, DeployTimeout: 10 * time.Minute, ExpiringWithin: 14 * 24 * time.Hour},
		Log:       LogConfig{Level: "info", Format: "text"},
	}
}

// defaultDataDir is /var/lib/sitefleet for root, and the user's data
// directory otherwise.
func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/sitefleet"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "sitefleet")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "sitefleet")
	}
	return "sitefleet-data"
}

// Load reads the configuration: defaults, then the YAML file (if
// path is not empty), then SITEFLEET_* environment variables, then the
// flags bound to v. Unknown keys, in the file or the environment, are errors
// that name them.
func Load(v *viper.Viper, path string) (Config, error) {
	keys := flatten(Default())
	for key, val := range keys {
		v.SetDefault(key, val)
	}
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for key, aliases := range envAliases {
		if err := v.BindEnv(append([]string{key, envName(key)}, aliases...)...); err != nil {
			return Config{}, fmt.Errorf("config: bind %s: %w", key, err)
		}
	}
	if err := checkEnv(os.Environ(), keys); err != nil {
		return Config{}, err
	}
	if err := readFileEnv(v, keys); err != nil {
		return Config{}, err
	}
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("read config %s: %w", path, err)
		}
	}
	var cfg Config
	hook := mapstructure.ComposeDecodeHookFunc(mapstructure.StringToTimeDurationHookFunc(), mapstructure.StringToSliceHookFunc(","))
	if err := v.UnmarshalExact(&cfg, viper.DecodeHook(hook)); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, cfg.Validate()
}

// readFileEnv sets each key of fileEnvKeys whose _FILE variable is set
// to the content of the file it names. Setting both the variable and its
// _FILE form is an error, as is a file that cannot be read, is empty or
// is larger than maxSecretFile; the message names the variable, never
// the content.
func readFileEnv(v *viper.Viper, defaults map[string]any) error {
	for _, key := range fileEnvKeys {
		name := envName(key)
		file := os.Getenv(name + "_FILE")
		if file == "" {
			continue
		}
		if _, set := os.LookupEnv(name); set {
			return fmt.Errorf("config: both %s and %s_FILE are set; set one", name, name)
		}
		value, err := readSecretFile(file)
		if err != nil {
			return fmt.Errorf("config: %s_FILE: %w", name, err)
		}
		if _, list := defaults[strings.ToLower(key)].([]string); list {
			// One value per line, or comma-separated as in the variable.
			v.Set(key, strings.FieldsFunc(value, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' }))
			continue
		}
		v.Set(key, value)
	}
	return nil
}

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxSecretFile)
	}
	value := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if strings.TrimSpace(value) == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return value, nil
}

// checkEnv refuses SITEFLEET_* variables that name no configuration key,
// so that a typo does not silently leave a default in place.
func checkEnv(environ []string, keys map[string]any) error {
	known := map[string]bool{}
	for _, k := range fileEnvKeys {
		known[envName(k)+"_FILE"] = true
	}
	for k := range keys {
		known[envName(k)] = true
		for _, alias := range envAliases[k] {
			known[alias] = true
		}
	}
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix+"_") && !known[name] && !slices.Contains(clientEnv, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config: unknown environment variable(s) %s (see config.sample.yaml for the keys)", strings.Join(unknown, ", "))
	}
	return nil
}

// envName is the environment variable AutomaticEnv reads for a key.
func envName(key string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// flatten returns the dotted keys of a config struct with their values, as
// viper names them (lower case).
func flatten(c Config) map[string]any {
	out := map[string]any{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			key := strings.ToLower(prefix + t.Field(i).Tag.Get("mapstructure"))
			if t.Field(i).Type.Kind() == reflect.Struct {
				walk(key+".", v.Field(i))
				continue
			}
			out[key] = v.Field(i).Interface()
		}
	}
	walk("", reflect.ValueOf(c))
	return out
}

// Validate checks the configuration as a whole.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("dataDir must be set"))
	}
	switch c.State.Store {
	case cluster.StoreEmbedded:
	case cluster.StoreEtcd:
		if len(c.EtcdEndpoints()) == 0 {
			errs = append(errs, errors.New(`state.etcd.address must list the etcd endpoints when state.store is "etcd"`))
		}
		errs = append(errs, c.checkEndpoints()...)
	default:
		errs = append(errs, fmt.Errorf("state.store %q: must be %q or %q", c.State.Store, cluster.StoreEmbedded, cluster.StoreEtcd))
	}
	if err := state.ValidatePrefix(c.State.Etcd.KeyPrefix); err != nil {
		errs = append(errs, fmt.Errorf("state.etcd.keyPrefix: %w", err))
	}
	if c.State.Etcd.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("state.etcd.timeout must be a positive number of milliseconds, not %d", c.State.Etcd.Timeout))
	}
	if n := c.State.Etcd.MaxTxnOps; n != 0 && n < minTxnOps {
		errs = append(errs, fmt.Errorf("state.etcd.maxTxnOps %d: must be at least %d (or 0 for the store's default)", n, minTxnOps))
	}
	if c.MemoryLimitBytes != 0 && c.MemoryLimitBytes != -1 && c.MemoryLimitBytes < minMemoryLimit {
		errs = append(errs, fmt.Errorf("memoryLimitBytes %d: must be at least %d (64 MiB), 0 to follow the live heap, or -1 for none", c.MemoryLimitBytes, minMemoryLimit))
	}
	if t := c.Web.Traffic; t.MaxSites < 1 || t.MaxSites > maxTrafficSites {
		errs = append(errs, fmt.Errorf("web.traffic.maxSites %d: must be 1 to %d", t.MaxSites, maxTrafficSites))
	}
	if j := c.Web.Traffic.JSONLog; j != "" && j != "stdout" && (!filepath.IsAbs(j) || filepath.Clean(j) != j) {
		errs = append(errs, fmt.Errorf("web.traffic.jsonLog %q: must be \"\", \"stdout\" or a clean absolute path", j))
	}
	if c.Web.Traffic.JSONLog != "" && !c.Web.Traffic.Enabled {
		errs = append(errs, errors.New("web.traffic.jsonLog needs web.traffic.enabled"))
	}
	if p := c.Previews; p.Domain != "" {
		if d, err := state.NormalizeHostname(p.Domain); err != nil || d != p.Domain {
			errs = append(errs, fmt.Errorf("previews.domain %q: must be a lower-case host name (punycode for IDNs)", p.Domain))
		}
		if p.Certificate != "" {
			if err := sftls.ValidateID(p.Certificate); err != nil {
				errs = append(errs, fmt.Errorf("previews.certificate: %w", err))
			}
		}
	} else if p.Certificate != "" || p.SelfSigned {
		errs = append(errs, errors.New("previews.certificate and previews.selfSigned need previews.domain"))
	}
	if p := c.Previews; p.Expires < 0 || p.Expires > 0 && p.Expires < time.Minute {
		errs = append(errs, fmt.Errorf("previews.expires %s: must be 0 (never) or at least 1m", p.Expires))
	}
	if h := c.Hooks; h.MaxAttempts < 1 || h.MaxAttempts > 100 || h.DeployTimeout < time.Second || h.ExpiringWithin < time.Hour {
		errs = append(errs, fmt.Errorf("hooks: maxAttempts %d (1 to 100), deployTimeout %s (at least 1s), expiringWithin %s (at least 1h)",
			h.MaxAttempts, h.DeployTimeout, h.ExpiringWithin))
	}
	if c.API.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("api.maxBodyBytes %d: must not be negative (0 for the default)", c.API.MaxBodyBytes))
	}
	for key, d := range map[string]time.Duration{"api.idleTimeout": c.API.IdleTimeout, "api.requestTimeout": c.API.RequestTimeout, "api.uploadTimeout": c.API.UploadTimeout} {
		if d < time.Second {
			errs = append(errs, fmt.Errorf("%s %s: must be at least 1s", key, d))
		}
	}
	if c.API.AuditKeep < 1 || c.API.AuditMaxAge < time.Hour {
		errs = append(errs, fmt.Errorf("api.auditKeep %d and api.auditMaxAge %s: keep at least 1 entry, for at least 1h", c.API.AuditKeep, c.API.AuditMaxAge))
	}
	if err := c.API.TLS.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.API.MaxConcurrentUploads < 1 {
		errs = append(errs, fmt.Errorf("api.maxConcurrentUploads %d: must be at least 1", c.API.MaxConcurrentUploads))
	}
	for key, addr := range map[string]string{"api.listen": c.API.Listen, "web.httpListen": c.Web.HTTPListen, "web.httpsListen": c.Web.HTTPSListen} {
		if key == "web.httpsListen" && addr == "" {
			continue // HTTPS off
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q must be host:port: %w", key, addr, err))
		}
	}
	for _, r := range c.Web.Resolvers {
		if net.ParseIP(r) == nil {
			errs = append(errs, fmt.Errorf("web.resolvers: %q is not an IP address", r))
		}
	}
	if c.Web.HTTPSListen != "" && c.Web.HTTPSListen == c.Web.HTTPListen {
		errs = append(errs, fmt.Errorf("web.httpsListen %q is also web.httpListen: give HTTPS a port of its own (or \"\" to turn it off)", c.Web.HTTPSListen))
	}
	if c.Cluster.LeaseTTL < time.Second || c.Cluster.LeaseTTL%time.Second != 0 {
		errs = append(errs, fmt.Errorf("cluster.leaseTTL %s must be a whole number of seconds, at least 1s", c.Cluster.LeaseTTL))
	}
	if c.Cluster.PublishInterval <= 0 || c.Cluster.PublishInterval >= c.Cluster.LeaseTTL {
		errs = append(errs, fmt.Errorf("cluster.publishInterval %s must be positive and shorter than cluster.leaseTTL", c.Cluster.PublishInterval))
	}
	if c.Shutdown.Drain < 0 || c.Shutdown.Drain > time.Hour {
		errs = append(errs, fmt.Errorf("shutdown.drain %s: must be between 0s (stop at once) and 1h", c.Shutdown.Drain))
	}
	if c.Cluster.MemberRetention <= 0 {
		errs = append(errs, errors.New("cluster.memberRetention must be positive"))
	}
	if c.Cluster.CompactInterval < 0 || c.Cluster.CompactInterval > 0 && c.Cluster.CompactRetention <= 0 {
		errs = append(errs, fmt.Errorf("cluster.compactInterval %s must be 0 (no compaction) or positive, with a positive cluster.compactRetention (%s)", c.Cluster.CompactInterval, c.Cluster.CompactRetention))
	}
	if c.State.Embedded.QuotaBytes < 0 {
		errs = append(errs, fmt.Errorf("state.embedded.quotaBytes %d: must be 0 (etcd's default, 2 GiB) or positive", c.State.Embedded.QuotaBytes))
	}
	b := c.Bundles
	if b.MinReplicas < 0 || b.ReplicationTimeout <= 0 || b.MaxArchiveBytes <= 0 || b.MaxUnpackedBytes <= 0 || b.MaxFiles <= 0 || b.MaxPathLength <= 0 || b.KeepVersions < 1 || b.GCInterval <= 0 {
		errs = append(errs, errors.New("bundles: minReplicas must be 0 (automatic) or more, keepVersions at least 1, and the limits, replicationTimeout and gcInterval positive"))
	}
	if b.RequireSignature && len(b.PublicKeys) == 0 {
		errs = append(errs, errors.New("bundles.requireSignature is true but bundles.publicKeys is empty: no bundle could be accepted"))
	}
	for i, k := range b.PublicKeys {
		if _, err := deploy.KeyID(k); err != nil {
			errs = append(errs, fmt.Errorf("bundles.publicKeys[%d]: %w", i, err))
		}
	}
	if c.Secrets.Key != "" {
		if _, err := sftls.ParseKey(c.Secrets.Key); err != nil {
			errs = append(errs, fmt.Errorf("secrets.key: %w", err))
		}
	}
	errs = append(errs, c.TLS.check()...)
	if c.Reconcile.Quiescence <= 0 || c.Reconcile.Resync <= 0 {
		errs = append(errs, errors.New("reconcile.quiescence and reconcile.resync must be positive"))
	}
	return errors.Join(errs...)
}

// EtcdEndpoints splits state.etcd.address into URLs, with lower-case
// schemes.
func (c *Config) EtcdEndpoints() []string {
	var out []string
	for _, a := range strings.Split(c.State.Etcd.Address, ",") {
		if a = strings.TrimSpace(a); a != "" {
			if scheme, rest, ok := strings.Cut(a, "://"); ok {
				a = strings.ToLower(scheme) + "://" + rest
			}
			out = append(out, a)
		}
	}
	return out
}

// checkEndpoints refuses endpoints that are not http(s)://host:port, a mix
// of http and https (the etcd client would use one for all), and TLS
// settings that plain http endpoints would silently ignore.
func (c *Config) checkEndpoints() []error {
	var errs []error
	schemes := map[string]bool{}
	for _, ep := range c.EtcdEndpoints() {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs = append(errs, fmt.Errorf("state.etcd.address: %q must be http://host:port or https://host:port", ep))
			continue
		}
		schemes[u.Scheme] = true
	}
	if len(schemes) > 1 {
		errs = append(errs, errors.New("state.etcd.address mixes http:// and https:// endpoints; use one scheme for all"))
	}
	return errs
}

// Warnings lists settings that load but are probably not what the
// operator meant.
func (c *Config) Warnings() []string {
	var w []string
	t := c.State.Etcd.TLSConfiguration
	if c.State.Store == cluster.StoreEtcd && !strings.Contains(c.State.Etcd.Address, "https://") &&
		(t.CA != "" || t.ClientCertificate != "" || t.ClientKey != "") {
		w = append(w, "state.etcd.tlsConfiguration is set but the etcd endpoints are http://, so TLS is not used; use https:// endpoints")
	}
	if host, _, err := net.SplitHostPort(c.API.Listen); err == nil && c.API.Advertise == "" && c.State.Store == cluster.StoreEtcd {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			w = append(w, fmt.Sprintf("api.listen %s is a wildcard address and api.advertise is not set: other nodes will be told to reach this one at %s, which only works on this host; set api.advertise", c.API.Listen, c.AdvertisedAPI()))
		}
	}
	return w
}

// AdvertisedAPI is the URL other nodes and clients use to reach this
// node's API.
func (c *Config) AdvertisedAPI() string {
	if c.API.Advertise != "" {
		return c.API.Advertise
	}
	return c.LocalAPI()
}

// LocalAPI is the URL at which this host reaches the node's API:
// LocalURL, with https when the API serves TLS.
func (c *Config) LocalAPI() string {
	u := LocalURL(c.API.Listen)
	if c.API.TLS.Enabled() {
		u = "https://" + strings.TrimPrefix(u, "http://")
	}
	return u
}

// SecretsKeyPath is where a node keeps the cluster key it generated.
func (c *Config) SecretsKeyPath() string { return filepath.Join(c.DataDir, "secrets.key") }

// TokenPath is where the node keeps its generated admin token.
func (c *Config) TokenPath() string { return filepath.Join(c.DataDir, "admin.token") }

func (t CertsCfg) check() []error {
	var errs []error
	if t.SelfSignedValidity < time.Hour || t.RenewBefore <= 0 || t.RenewBefore >= t.SelfSignedValidity {
		errs = append(errs, fmt.Errorf("tls: selfSignedValidity (%s) must be at least 1h and renewBefore (%s) positive and shorter", t.SelfSignedValidity, t.RenewBefore))
	}
	if t.DHParamBits < sftls.MinDHBits || t.DHParamBits > sftls.MaxDHBits {
		errs = append(errs, fmt.Errorf("tls.dhParamBits %d: must be %d..%d", t.DHParamBits, sftls.MinDHBits, sftls.MaxDHBits))
	}
	if t.DHParamMaxAge < time.Minute {
		errs = append(errs, fmt.Errorf("tls.dhParamMaxAge %s: must be at least 1m", t.DHParamMaxAge))
	}
	a := t.ACME
	if u, err := url.Parse(a.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("tls.acme.directoryURL %q: must be an https:// URL", a.DirectoryURL))
	}
	if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \t\r\n<>")) {
		errs = append(errs, fmt.Errorf("tls.acme.email %q: not an e-mail address", a.Email))
	}
	if a.RetryMin <= 0 || a.RetryMax < a.RetryMin {
		errs = append(errs, fmt.Errorf("tls.acme: retryMin (%s) must be positive and retryMax (%s) at least as long", a.RetryMin, a.RetryMax))
	}
	return errs
}

// LocalURL turns a listen address into a URL to reach it from this host.
func LocalURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
