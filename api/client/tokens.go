package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sitefleet/sitefleet/model"
)

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Role model.Role `json:"role"`
	// Sites are the site patterns a deploy token is limited to.
	Sites []string `json:"sites,omitempty"`
	// Expires is how long the token lives, e.g. "720h" or "30d"; empty
	// for ever.
	Expires string `json:"expires,omitempty"`
	Label   string `json:"label,omitempty"`
}

// CreatedToken is the answer to POST /v1/tokens: the token, shown once,
// and its record.
type CreatedToken struct {
	// Secret is the token to present (Authorization: Bearer <Secret>).
	Secret string `json:"token"`
	model.Token
}

// TokenList is the answer to GET /v1/tokens.
type TokenList struct {
	Tokens []model.Token `json:"tokens"`
}

// AuditList is the answer to GET /v1/audit.
type AuditList struct {
	Entries []model.AuditEntry `json:"entries"`
}

// CreateToken makes a new API token.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (CreatedToken, error) {
	var out CreatedToken
	_, err := c.do(ctx, http.MethodPost, "/v1/tokens", nil, req, &out)
	return out, err
}

// ListTokens lists the API tokens (never the tokens themselves).
func (c *Client) ListTokens(ctx context.Context) (TokenList, error) {
	var out TokenList
	_, err := c.do(ctx, http.MethodGet, "/v1/tokens", nil, nil, &out)
	return out, err
}

// RevokeToken revokes the token with the given ID on every node.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// Audit reads the audit trail from since (zero: the start), at most limit
// entries (0: the server's default), oldest first.
func (c *Client) Audit(ctx context.Context, since time.Time, limit int) (AuditList, error) {
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/audit"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out AuditList
	_, err := c.do(ctx, http.MethodGet, path, nil, nil, &out)
	return out, err
}
