package model

import "time"

// AuditEntry records one change made through the API: who (the token's ID
// and role, and the client's address), when, what and with which result.
// It never holds a token, a key or a request body.
type AuditEntry struct {
	Time time.Time `json:"time"`
	// Node is the node whose API took the request.
	Node    string `json:"node"`
	TokenID string `json:"tokenId"`
	Role    Role   `json:"role"`
	// Source is the client's address as the node saw it.
	Source string `json:"source"`
	// Action is the method and route, e.g. "PUT /v1/sites/{domain}".
	Action string `json:"action"`
	// Target names what was changed, e.g. "domain=example.com".
	Target string `json:"target,omitempty"`
	// Status is the HTTP status of the answer; Error its problem detail
	// when it failed.
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
}
