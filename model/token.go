package model

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// Role is what an API token may do.
type Role string

// The roles, each allowed what the one before it is, and more; RoleNode
// stands apart.
const (
	// RoleRead sees status, metrics and the state, and changes nothing.
	RoleRead Role = "read"
	// RoleDeploy also uploads bundles, deploys and rolls back, within its
	// site patterns.
	RoleDeploy Role = "deploy"
	// RoleAdmin does everything.
	RoleAdmin Role = "admin"
	// RoleNode is a node's credential towards its peers: it fetches
	// bundles and objects, and nothing else.
	RoleNode Role = "node"
)

// Roles that a token can be created with.
var Roles = []Role{RoleRead, RoleDeploy, RoleAdmin}

// Permission is what an API call needs.
type Permission string

// The permissions the API checks.
const (
	PermRead   Permission = "read"   // status, metrics, sites, bundles, certificates
	PermDeploy Permission = "deploy" // uploads, deploys, rollbacks
	PermAdmin  Permission = "admin"  // everything else that changes the fleet
	PermPeer   Permission = "peer"   // bundle and object bytes, between nodes
)

// Allows reports whether role r has permission p.
func (r Role) Allows(p Permission) bool {
	switch r {
	case RoleAdmin:
		return true
	case RoleDeploy:
		return p == PermRead || p == PermDeploy
	case RoleRead:
		return p == PermRead
	case RoleNode:
		return p == PermPeer
	}
	return false
}

// Token is what the fleet keeps of an API token: never the token itself,
// which is shown once when it is created; etcd holds it under its SHA-256.
type Token struct {
	// ID names the token in lists, revocations and the audit trail; it is
	// derived from the token's hash and reveals nothing of the token.
	ID string `json:"id"`
	// Role; records written before roles existed have none and are admin.
	Role Role `json:"role,omitempty"`
	// Sites, for a deploy token, are the patterns of the sites it may
	// deploy to and roll back ("blog.example.com", "*.example.com"); none
	// means every site.
	Sites     []string   `json:"sites,omitempty"`
	Label     string     `json:"label,omitempty"`
	Creator   string     `json:"creator,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// LastUsed is when a node last accepted it (to within a few minutes);
	// output only.
	LastUsed *time.Time `json:"lastUsed,omitempty"`
}

// TokenID is the ID of the token whose SHA-256 is hash (hex).
func TokenID(hash string) string {
	if len(hash) > 16 {
		hash = hash[:16]
	}
	return "tok_" + hash
}

// RoleOf returns the token's role (admin for records without one).
func (t Token) RoleOf() Role {
	if t.Role == "" {
		return RoleAdmin
	}
	return t.Role
}

// Expired reports whether the token has expired at now.
func (t Token) Expired(now time.Time) bool {
	return t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)
}

// AllowsSite reports whether the token may deploy to domain.
func (t Token) AllowsSite(domain string) bool {
	if len(t.Sites) == 0 {
		return true
	}
	domain = strings.ToLower(domain)
	for _, p := range t.Sites {
		if ok, _ := path.Match(p, domain); ok {
			return true
		}
	}
	return false
}

// ValidateSitePattern checks a site pattern: a host name in which "*"
// stands for any run of characters, e.g. "*.example.com".
func ValidateSitePattern(p string) error {
	if p == "" || len(p) > 253 {
		return fmt.Errorf("site pattern %q: must be 1 to 253 characters", p)
	}
	for _, c := range p {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '*') {
			return fmt.Errorf("site pattern %q: only lower-case letters, digits, '-', '.' and '*' are allowed", p)
		}
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("site pattern %q: %w", p, err)
	}
	return nil
}
