package node

import (
	"fmt"

	"github.com/sitefleet/sitefleet/deploy/manifest"
	"github.com/sitefleet/sitefleet/webserver"
)

// rulesFor returns the serving rules of the bundle sha, parsed from its
// _redirects and _headers once and cached (bundles are immutable). A bundle
// whose rules cannot be used yields an error for the sites that deploy it.
func (n *Node) rulesFor(sha string) (*webserver.Rules, error) {
	if r, ok := n.rules[sha]; ok {
		return r.rules, r.err
	}
	rules, err := n.loadRules(sha)
	n.rules[sha] = cachedRules{rules, err}
	return rules, err
}

type cachedRules struct {
	rules *webserver.Rules
	err   error
}

func (n *Node) loadRules(sha string) (*webserver.Rules, error) {
	m, err := manifest.Load(n.opts.Bundles.Root(sha), manifest.DefaultLimits())
	if err != nil {
		if mentionsBasicAuth(n.opts.Bundles.Root(sha)) {
			// Its logins cannot be read: nobody gets in rather than
			// everybody.
			n.logins.deny(sha)
		}
		return nil, fmt.Errorf("bundle manifest: %w", err)
	}
	n.logins.put(sha, m)
	r := ToRules(m)
	if err := r.Check(); err != nil {
		return nil, fmt.Errorf("bundle manifest: %w", err)
	}
	if r.Empty() {
		return nil, nil
	}
	return r, nil
}

// ToRules converts a parsed manifest into the web server's rules.
func ToRules(m manifest.Manifest) *webserver.Rules {
	r := &webserver.Rules{}
	for _, x := range m.Redirects {
		r.Redirects = append(r.Redirects, webserver.Redirect{
			From: webserver.Pattern{Segments: x.From.Segments}, To: x.To, Status: x.Status, Force: x.Force,
		})
	}
	for _, h := range m.Headers {
		rule := webserver.HeaderRule{Path: webserver.Pattern{Segments: h.Path.Segments}}
		for _, kv := range h.Headers {
			rule.Headers = append(rule.Headers, webserver.Header{Name: kv.Name, Value: kv.Value})
		}
		r.Headers = append(r.Headers, rule)
	}
	return r
}
