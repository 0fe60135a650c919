package model

import "time"

// Hook is a webhook: a URL that receives the fleet's events of the listed
// types, each signed with the hook's secret (HMAC-SHA256).
type Hook struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Events are the event types the hook receives (HookEventTypes).
	Events []string `json:"events"`
	// Secret is the signing secret, sealed with the cluster key in etcd;
	// the API never returns it.
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	// CreatedBy is the ID of the token that added the hook.
	CreatedBy string `json:"createdBy,omitempty"`
	// Revision is the etcd revision that created the hook (output only):
	// it receives the events of later changes.
	Revision int64 `json:"revision,omitempty"`
}

// The event types hooks can receive.
const (
	EventSiteCreated      = "site.created"
	EventSiteDeleted      = "site.deleted"
	EventDeployStarted    = "deploy.started"
	EventDeployRolledBack = "deploy.rolled_back"
	EventDeploySucceeded  = "deploy.succeeded"
	EventDeployFailed     = "deploy.failed"
	EventNodeJoined       = "node.joined"
	EventNodeLeft         = "node.left"
	EventNodeUnhealthy    = "node.unhealthy"
	EventCertIssued       = "certificate.issued"
	EventCertFailed       = "certificate.failed"
	EventCertExpiring     = "certificate.expiring"
)

// HookEventTypes lists every event type, in the order the docs give them.
var HookEventTypes = []string{EventSiteCreated, EventSiteDeleted, EventDeployStarted, EventDeployRolledBack, EventDeploySucceeded, EventDeployFailed,
	EventNodeJoined, EventNodeLeft, EventNodeUnhealthy, EventCertIssued, EventCertFailed, EventCertExpiring}

// HookEvent is what a hook receives as the request body. ID is the same
// for every delivery of the event, to every hook: the idempotency key.
type HookEvent struct {
	ID   string    `json:"id"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Site is the site of site and deploy events; Node the node of node
	// events.
	Site string `json:"site,omitempty"`
	Node string `json:"node,omitempty"`
	// Deployment is the site's deployment after a deploy or a rollback;
	// Previous the one it replaced.
	Deployment *Deployment `json:"deployment,omitempty"`
	Previous   *Deployment `json:"previous,omitempty"`
	// Revision is the etcd revision of the change.
	Revision int64 `json:"revision"`
	// Errors are, for deploy.failed, the nodes' errors for the site (by
	// node), or why the deploy was given up ("fleet"); for
	// node.unhealthy, why; for certificate.failed, the CA's error by name.
	Errors map[string]string `json:"errors,omitempty"`
	// Certificate is the certificate of certificate events.
	Certificate *HookCertificate `json:"certificate,omitempty"`
}

// HookCertificate describes a certificate in an event (never its key).
type HookCertificate struct {
	ID       string    `json:"id,omitempty"`
	Domains  []string  `json:"domains"`
	NotAfter time.Time `json:"notAfter,omitzero"`
	Issuer   string    `json:"issuer,omitempty"`
}

// HookDelivery is one event still to be delivered to one hook.
type HookDelivery struct {
	Event       HookEvent `json:"event"`
	Hook        string    `json:"hook"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"nextAttempt"`
	LastError   string    `json:"lastError,omitempty"`
}

// HookLogEntry records one delivery attempt.
type HookLogEntry struct {
	Time    time.Time `json:"time"`
	Hook    string    `json:"hook"`
	URL     string    `json:"url"`
	Event   string    `json:"event"`
	Type    string    `json:"type"`
	Attempt int       `json:"attempt"`
	// Status is the receiver's HTTP status, 0 when none came.
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
	// Result is "delivered", "retrying" or "failed" (given up).
	Result     string  `json:"result"`
	DurationMS float64 `json:"durationMs"`
}
