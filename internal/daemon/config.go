package daemon

import "github.com/sitefleet/sitefleet/internal/config"

// The node's configuration lives in internal/config; these names keep
// the wiring and its tests short.
type (
	Config     = config.Config
	LogConfig  = config.LogConfig
	BundlesCfg = config.BundlesCfg
	EtcdConfig = config.EtcdConfig
	TLSConfig  = config.TLSConfig
)
