package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/sitefleet/sitefleet/model"
)

// HookRequest is the body of POST /v1/hooks.
type HookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	// Secret signs the deliveries; empty makes one, returned once.
	Secret string `json:"secret,omitempty"`
}

// CreatedHook answers POST /v1/hooks: the hook and its signing secret,
// which is shown this once.
type CreatedHook struct {
	Hook   model.Hook `json:"hook"`
	Secret string     `json:"secret"`
}

// HookList answers GET /v1/hooks.
type HookList struct {
	Hooks []model.Hook `json:"hooks"`
}

// HookLog answers GET /v1/hooks/log.
type HookLog struct {
	Entries []model.HookLogEntry `json:"entries"`
}

// AddHook adds a webhook.
func (c *Client) AddHook(ctx context.Context, req HookRequest) (CreatedHook, error) {
	var out CreatedHook
	_, err := c.do(ctx, http.MethodPost, "/v1/hooks", nil, req, &out)
	return out, err
}

// ListHooks lists the webhooks (never their secrets).
func (c *Client) ListHooks(ctx context.Context) (HookList, error) {
	var out HookList
	_, err := c.do(ctx, http.MethodGet, "/v1/hooks", nil, nil, &out)
	return out, err
}

// RemoveHook removes a webhook.
func (c *Client) RemoveHook(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/hooks/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// HookDeliveries reads the newest limit delivery attempts (0: the
// server's default), oldest first.
func (c *Client) HookDeliveries(ctx context.Context, limit int) (HookLog, error) {
	path := "/v1/hooks/log"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out HookLog
	_, err := c.do(ctx, http.MethodGet, path, nil, nil, &out)
	return out, err
}
