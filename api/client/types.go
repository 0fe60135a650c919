package client

import (
	"time"

	"github.com/sitefleet/sitefleet/model"
)

// NodeStatus is the answer of GET /v1/status: what one node serves and how
// healthy it is.
type NodeStatus struct {
	Node    string `json:"node"`
	Version string `json:"version"`
	// Leader is true while this node leads the fleet.
	Leader bool `json:"leader"`
	// RegistryError says why the node is not registered in the fleet, if
	// it is not (etcd unreachable, or its name taken by another node).
	RegistryError string `json:"registryError,omitempty"`
	// Ready is true once nginx serves an applied state (see /readyz), and
	// false again while the node drains before it stops.
	Ready bool `json:"ready"`
	// Draining is true once the node was asked to stop: it still serves,
	// but its readiness checks fail.
	Draining bool `json:"draining,omitempty"`
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
	// Reloads counts the configs nginx loaded since the node started;
	// deploys, rollbacks, certificates and plain sites need none.
	Reloads int64 `json:"reloads"`
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
	Sites    []model.Site `json:"sites"`
}

// Preview is the answer of GET /v1/status/preview: what the node would
// change to converge on the desired state.
type Preview struct {
	Node            string         `json:"node"`
	AppliedRevision int64          `json:"appliedRevision"`
	DesiredRevision int64          `json:"desiredRevision"`
	PendingImport   bool           `json:"pendingImport,omitempty"`
	Changes         []model.Change `json:"changes"`
}

// ClusterStatus is the answer of GET /v1/cluster: every node of the fleet.
type ClusterStatus struct {
	// StateRevision is the revision of the last change to the desired
	// state: a node whose applied revision is lower has drifted.
	StateRevision  int64         `json:"stateRevision"`
	StateChangedAt *time.Time    `json:"stateChangedAt,omitempty"`
	Leader         string        `json:"leader"`
	Nodes          []ClusterNode `json:"nodes"`
}

// ClusterNode is one node in a ClusterStatus.
type ClusterNode struct {
	Name string `json:"name"`
	// Live is false for a node seen before whose lease has expired.
	Live            bool      `json:"live"`
	Leader          bool      `json:"leader"`
	Version         string    `json:"version"`
	APIAddress      string    `json:"apiAddress,omitempty"`
	StartedAt       time.Time `json:"startedAt"`
	LastSeen        time.Time `json:"lastSeen"`
	AppliedRevision int64     `json:"appliedRevision"`
	// Drifted is true while the node serves a state older than the desired one.
	Drifted bool `json:"drifted"`
	// DriftedSince is when the state changed that the node has not applied.
	DriftedSince   *time.Time        `json:"driftedSince,omitempty"`
	Ready          bool              `json:"ready"`
	Stale          bool              `json:"stale"`
	Healthy        bool              `json:"healthy"`
	UnhealthySince *time.Time        `json:"unhealthySince,omitempty"`
	LastError      string            `json:"lastError,omitempty"`
	SiteErrors     map[string]string `json:"siteErrors,omitempty"`
}

// TreeResult is the answer of PUT /v1/apps/{app}/{version}/tree.
type TreeResult struct {
	// Tree is the tree's digest, which names the release.
	Tree string `json:"tree"`
	// Missing are the objects the node lacks: send only those.
	Missing []string `json:"missing"`
	Files   int      `json:"files"`
	Bytes   int64    `json:"bytes"`
}

// ObjectsResult is the answer of POST /v1/objects.
type ObjectsResult struct {
	Stored int `json:"stored"`
}

// CommitRequest is the body of POST /v1/apps/{app}/{version}/commit.
type CommitRequest struct {
	Tree string `json:"tree"`
	// Signature signs the release digest of app, version and tree.
	Signature string `json:"signature,omitempty"`
}

// FetchRequest is the body of POST /v1/objects/fetch.
type FetchRequest struct {
	Objects []string `json:"objects"`
}

// UploadResult is the answer of PUT /v1/apps/{app}/{version} and of
// POST /v1/apps/{app}/{version}/commit.
type UploadResult struct {
	Bundle model.Bundle `json:"bundle"`
	// Created is false when the same content had been uploaded before.
	Created bool `json:"created"`
	// Holders are the nodes that held the bundle when the upload answered.
	Holders []string `json:"holders"`
}

// BundleList is the answer of GET /v1/apps and GET /v1/apps/{app}.
type BundleList struct {
	Bundles []model.Bundle `json:"bundles"`
}

// DeployResult is the answer of a deployment or rollback.
type DeployResult struct {
	Site model.Site `json:"site"`
	// Wait is set when the request asked to wait for the fleet.
	Wait *DeployWait `json:"wait,omitempty"`
}

// DeployWait says whether every live node serves a deployment.
type DeployWait struct {
	// Done is true when every live node serves it.
	Done  bool             `json:"done"`
	Nodes []DeployNodeWait `json:"nodes"`
}

// DeployNodeWait is one node's progress towards a deployment.
type DeployNodeWait struct {
	Node            string `json:"node"`
	AppliedRevision int64  `json:"appliedRevision"`
	Serving         bool   `json:"serving"`
	Error           string `json:"error,omitempty"`
}

// CertImport is the body of POST /v1/certificates.
type CertImport struct {
	// ID names the certificate: lower-case letters, digits and '-'.
	ID string `json:"id"`
	// Chain is the PEM chain, leaf first; Key the PEM private key.
	Chain string `json:"chain"`
	Key   string `json:"key"`
	// Domains, when given, must all be covered by the certificate.
	Domains []string `json:"domains,omitempty"`
}

// CertificateInfo is the public view of a certificate: never key material.
type CertificateInfo struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Domains   []string  `json:"domains"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serial"`
	// Status is "valid", "expiring" (within 30 days), "expired" or
	// "not yet valid"; for an ACME certificate not obtained yet,
	// "pending" or "failed".
	Status string `json:"status"`
	// Error is the last ACME failure for this name, NextAttempt when the
	// leader asks the CA again.
	Error       string     `json:"error,omitempty"`
	NextAttempt *time.Time `json:"nextAttempt,omitempty"`
	ChainPEM    string     `json:"chainPem,omitempty"`
}

// CertificateList is the answer of GET /v1/certificates.
type CertificateList struct {
	Certificates []CertificateInfo `json:"certificates"`
}
