package client

import (
	"time"

	"github.com/sitefleet/sitefleet/state"
)

// NodeStatus is the answer of GET /v1/status: what one node serves and how
// healthy it is.
type NodeStatus struct {
	Node    string `json:"node"`
	Version string `json:"version"`
	// Ready is true once nginx serves an applied state (see /readyz).
	Ready bool `json:"ready"`
	// AppliedRevision is the state revision nginx serves.
	AppliedRevision int64      `json:"appliedRevision"`
	AppliedAt       *time.Time `json:"appliedAt,omitempty"`
	// DesiredRevision is the revision of the latest state read from etcd.
	DesiredRevision int64 `json:"desiredRevision"`
	// Stale is true while the node cannot confirm its state against etcd.
	Stale      bool       `json:"stale"`
	StaleSince *time.Time `json:"staleSince,omitempty"`
	// FromCache is true while the node serves the state cached on disk
	// and has not reached etcd since it started.
	FromCache bool `json:"fromCache"`
	// PendingImport is true while a multi-transaction import holds the state.
	PendingImport bool        `json:"pendingImport,omitempty"`
	Etcd          EtcdStatus  `json:"etcd"`
	Nginx         NginxStatus `json:"nginx"`
	Sites         int         `json:"sites"`
	// SiteErrors maps a domain to why its latest state is not applied.
	SiteErrors  map[string]string `json:"siteErrors,omitempty"`
	LastError   string            `json:"lastError,omitempty"`
	LastErrorAt *time.Time        `json:"lastErrorAt,omitempty"`
}

// EtcdStatus is the node's view of the state store.
type EtcdStatus struct {
	Reachable bool `json:"reachable"`
}

// NginxStatus is the state of the node's nginx.
type NginxStatus struct {
	Running    bool       `json:"running"`
	PID        int        `json:"pid,omitempty"`
	Generation string     `json:"generation,omitempty"`
	LastApply  *time.Time `json:"lastApply,omitempty"`
	LastError  string     `json:"lastError,omitempty"`
	Restarts   int        `json:"restarts"`
}

// Problem is an RFC 9457 problem document, the body of every error answer.
type Problem struct {
	Type   string `json:"type,omitempty"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Code is sitefleet's error code (e.g. "conflict", "name_taken").
	Code string `json:"code,omitempty"`
	Node string `json:"node,omitempty"`
}

// Headers every API answer carries.
const (
	// HeaderNode names the node that answered.
	HeaderNode = "X-Sitefleet-Node"
	// HeaderRevision is the state revision the answer refers to.
	HeaderRevision = "X-Sitefleet-Revision"
)

// SitesList is the answer of GET /v1/sites.
type SitesList struct {
	Revision int64        `json:"revision"`
	Sites    []state.Site `json:"sites"`
}
