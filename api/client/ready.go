package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// Readiness is the answer of GET /readyz.
type Readiness struct {
	Ready           bool   `json:"ready"`
	AppliedRevision int64  `json:"appliedRevision"`
	Stale           bool   `json:"stale"`
	Reason          string `json:"reason,omitempty"`
}

// Ready asks the node whether it is ready for traffic (no token needed).
// A node that is not answers 503, which is returned here as a Readiness,
// not an error.
func (c *Client) Ready(ctx context.Context) (Readiness, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/readyz", nil)
	if err != nil {
		return Readiness{}, fmt.Errorf("GET /readyz: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Readiness{}, fmt.Errorf("GET /readyz: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return Readiness{}, decodeError(resp)
	}
	var out Readiness
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return Readiness{}, fmt.Errorf("GET /readyz: decode answer: %w", err)
	}
	return out, nil
}
