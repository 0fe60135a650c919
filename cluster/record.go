package cluster

import (
	"time"
)

// NodeRecord is what a node publishes about itself under
// <prefix>/nodes/<name>, bound to its lease: it vanishes when the node
// does. A copy without the lease, under <prefix>/members/<name>, keeps the
// last values seen.
type NodeRecord struct {
	Name string `json:"name"`
	// ID identifies the node's data directory, so that a node restarted
	// before its old lease expired is recognised as itself.
	ID         string    `json:"id"`
	Version    string    `json:"version"`
	APIAddress string    `json:"apiAddress,omitempty"`
	StartedAt  time.Time `json:"startedAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
	// GoneAt, in the last-seen copy only, is when the leader found the node
	// gone (its lease ended).
	GoneAt *time.Time `json:"goneAt,omitempty"`
	Leader bool       `json:"leader"`
	// DisallowLeadership is true for nodes that never lead.
	DisallowLeadership bool `json:"disallowLeadership,omitempty"`

	AppliedRevision int64             `json:"appliedRevision"`
	DesiredRevision int64             `json:"desiredRevision"`
	Ready           bool              `json:"ready"`
	Stale           bool              `json:"stale"`
	NginxRunning    bool              `json:"nginxRunning"`
	Sites           int               `json:"sites"`
	SiteErrors      map[string]string `json:"siteErrors,omitempty"`
	LastError       string            `json:"lastError,omitempty"`
	// UnhealthySince is when the node stopped being healthy (ready, nginx
	// running, no failed pass); nil while it is healthy.
	UnhealthySince *time.Time `json:"unhealthySince,omitempty"`
}

// Healthy reports whether the record describes a node that serves its
// state without errors.
func (r NodeRecord) Healthy() bool {
	return r.Ready && r.NginxRunning && r.LastError == "" && len(r.SiteErrors) == 0
}
