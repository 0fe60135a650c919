package node

import (
	"context"
	"fmt"

	"github.com/sitefleet/sitefleet/state"
)

// Preview is what a node would change to converge on the desired state.
type Preview struct {
	AppliedRevision int64          `json:"appliedRevision"`
	DesiredRevision int64          `json:"desiredRevision"`
	PendingImport   bool           `json:"pendingImport,omitempty"`
	Changes         []state.Change `json:"changes"`
}

// Preview reads the desired state and compares it with what this node
// serves, changing nothing. Sites that would fail validation are listed as
// changes all the same; the pass itself would report their errors.
func (n *Node) Preview(ctx context.Context) (Preview, error) {
	snap, err := n.opts.Source.Snapshot(ctx)
	if err != nil {
		return Preview{}, fmt.Errorf("read desired state: %w", err)
	}
	p := Preview{DesiredRevision: snap.Revision, PendingImport: snap.PendingImport != "", Changes: []state.Change{}}
	applied := n.applied.Load()
	if applied == nil {
		applied = &state.Snapshot{}
	}
	p.AppliedRevision = applied.Revision
	seen := map[string]bool{}
	for _, raw := range snap.Sites {
		seen[raw.Domain] = true
		want := checkSite(raw).form(raw)
		have, ok := applied.Site(raw.Domain)
		switch {
		case !ok:
			p.Changes = append(p.Changes, state.Change{Action: "add", Kind: "site", Name: raw.Domain})
		case !have.Equal(want):
			p.Changes = append(p.Changes, state.Change{Action: "update", Kind: "site", Name: raw.Domain})
		}
	}
	for _, s := range applied.Sites {
		if !seen[s.Domain] {
			p.Changes = append(p.Changes, state.Change{Action: "remove", Kind: "site", Name: s.Domain})
		}
	}
	return p, nil
}
