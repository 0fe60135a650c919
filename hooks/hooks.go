// Package hooks sends the fleet's events to webhooks: signed, at least
// once, once per fleet.
//
// Events are derived by the leader from etcd's history of the site
// records (a watch from a cursor kept in etcd), not by the API node that
// made a change: a change that etcd committed is an event even if that
// node died the next moment, and an event's ID (its idempotency key) is
// made of the change's revision, its type and its site, so a new leader
// that derives it again gives it the same ID. Deliveries wait in an
// outbox in etcd (<prefix>/hooks/outbox/<event>/<hook>) until the
// receiver answered 2xx or MaxAttempts failed; every write the leader
// makes is fenced by its leadership. A delivery in flight when the leader
// dies is made again by the next one, with the same ID.
//
// Deliveries run on the leader, apart from every request and from the
// reconciler: a receiver that hangs or fails never slows a deploy.
package hooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sitefleet/sitefleet/cluster"
	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
)

// Signature headers: SignatureHeader carries "t=<unix seconds>,v1=<hex
// HMAC-SHA256 of "<t>.<body>" with the hook's secret>"; IDHeader the
// event ID, which is the same for every delivery of the event.
const (
	SignatureHeader = "Sitefleet-Signature"
	IDHeader        = "Idempotency-Key"
	EventHeader     = "Sitefleet-Event"
)

// Sign returns the signature header's value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header's value for body, as a receiver does:
// the MAC must match and the time be within tolerance of now.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return fmt.Errorf("malformed signature %q", header)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("signature time %s is more than %s away", time.Unix(sec, 0).UTC(), tolerance)
	}
	if !hmac.Equal([]byte(sig), []byte(mac(secret, ts, body))) {
		return fmt.Errorf("signature does not match")
	}
	return nil
}

// Events returns the events one site change makes.
func Events(c state.SiteChange, now time.Time) []model.HookEvent {
	ev := func(typ string) model.HookEvent { return event(typ, c.Domain, c.Revision, now) }
	switch {
	case c.Prev == nil && c.Next != nil:
		return []model.HookEvent{ev(model.EventSiteCreated)}
	case c.Next == nil:
		if c.Prev == nil && c.Domain == "" {
			return nil
		}
		return []model.HookEvent{ev(model.EventSiteDeleted)}
	}
	prev, next := c.Prev, c.Next
	if prev.Deployment.Equal(next.Deployment) || next.Deployment == nil {
		return nil
	}
	typ := model.EventDeployStarted
	if len(prev.History) > 0 && prev.History[0].Equal(next.Deployment) && len(next.History) == len(prev.History)-1 {
		typ = model.EventDeployRolledBack
	}
	e := ev(typ)
	e.Deployment, e.Previous = next.Deployment, prev.Deployment
	return []model.HookEvent{e}
}

// event makes an event whose ID depends on its type, site and revision
// alone: whoever derives it, it has the same idempotency key.
func event(typ, site string, rev int64, now time.Time) model.HookEvent {
	sum := sha256.Sum256([]byte(typ + "\x00" + site))
	// The revision zero-padded, then the type's place in a change's
	// life: the outbox lists events in order.
	id := fmt.Sprintf("evt_%012d_%d_%s", rev, typeOrder[typ], hex.EncodeToString(sum[:6]))
	return model.HookEvent{ID: id, Type: typ, Time: now.UTC(), Site: site, Revision: rev}
}

// NodeEvents returns the events one change of a node record makes: a new
// record is node.joined (a node that restarts joins again), a deleted one
// node.left (it stopped, or its lease ended), and a node that stops being
// up (ready, nginx running, its last pass applied) node.unhealthy. A
// site's error on a node is a deploy.failed, not a node event.
func NodeEvents(c state.KVChange, now time.Time) []model.HookEvent {
	ev := func(typ string) model.HookEvent {
		e := event(typ, c.Name, c.Revision, now)
		e.Node, e.Site = c.Name, ""
		return e
	}
	var prev, next cluster.NodeRecord
	prevOK := c.Prev != nil && json.Unmarshal(c.Prev, &prev) == nil
	nextOK := c.Next != nil && json.Unmarshal(c.Next, &next) == nil
	switch {
	case c.Next == nil:
		return []model.HookEvent{ev(model.EventNodeLeft)}
	case c.Prev == nil:
		return []model.HookEvent{ev(model.EventNodeJoined)}
	case prevOK && nextOK && up(prev) && !up(next):
		e := ev(model.EventNodeUnhealthy)
		e.Errors = map[string]string{c.Name: downReason(next)}
		return []model.HookEvent{e}
	}
	return nil
}

func up(r cluster.NodeRecord) bool { return r.Ready && r.NginxRunning && r.LastError == "" }

func downReason(r cluster.NodeRecord) string {
	switch {
	case r.LastError != "":
		return r.LastError
	case !r.NginxRunning:
		return "nginx is not running"
	default:
		return "not ready"
	}
}

// CertEvents returns the events one change of a certificate record
// makes: a new certificate, or one with another serial (a renewal, a new
// import), is certificate.issued.
func CertEvents(c state.KVChange, now time.Time) []model.HookEvent {
	var prev, next model.Certificate
	if c.Next == nil || json.Unmarshal(c.Next, &next) != nil {
		return nil
	}
	if c.Prev != nil && json.Unmarshal(c.Prev, &prev) == nil && prev.Serial == next.Serial {
		return nil
	}
	e := event(model.EventCertIssued, c.Name, c.Revision, now)
	e.Site, e.Certificate = "", certInfo(next)
	return []model.HookEvent{e}
}

func certInfo(c model.Certificate) *model.HookCertificate {
	return &model.HookCertificate{ID: c.ID, Domains: c.Domains, NotAfter: c.NotAfter, Issuer: c.Issuer}
}

// ACMEEvents returns the events one change of the leader's ACME status of
// a name makes: each new failure to obtain a certificate is
// certificate.failed, with the CA's error.
func ACMEEvents(c state.KVChange, now time.Time) []model.HookEvent {
	var prev, next sftls.ACMEStatus
	if c.Next == nil || json.Unmarshal(c.Next, &next) != nil || next.State != "failed" {
		return nil
	}
	if c.Prev != nil && json.Unmarshal(c.Prev, &prev) == nil && prev.State == "failed" && prev.Failures >= next.Failures {
		return nil
	}
	name := next.Name
	if name == "" {
		name = c.Name
	}
	e := event(model.EventCertFailed, name, c.Revision, now)
	e.Site = ""
	e.Certificate = &model.HookCertificate{Domains: []string{name}}
	e.Errors = map[string]string{name: next.Error}
	return []model.HookEvent{e}
}

// typeOrder orders the events of one revision.
var typeOrder = map[string]int{
	model.EventSiteCreated: 0, model.EventDeployStarted: 1, model.EventDeployRolledBack: 1,
	model.EventDeploySucceeded: 2, model.EventDeployFailed: 2, model.EventSiteDeleted: 3,
	model.EventNodeJoined: 0, model.EventNodeUnhealthy: 1, model.EventNodeLeft: 3,
	model.EventCertIssued: 1, model.EventCertFailed: 1, model.EventCertExpiring: 2,
}

// isDeploy reports whether an event makes a site serve another bundle,
// whose outcome (deploy.succeeded or deploy.failed) follows.
func isDeploy(typ string) bool {
	return typ == model.EventDeployStarted || typ == model.EventDeployRolledBack
}

// pendingDeploys are the deploys among changes whose outcome some hook
// wants.
func pendingDeploys(changes []state.SiteChange, hooks []model.Hook, now time.Time) []model.HookEvent {
	if !slices.ContainsFunc(hooks, func(h model.Hook) bool {
		return wants(h, model.EventDeploySucceeded) || wants(h, model.EventDeployFailed)
	}) {
		return nil
	}
	var out []model.HookEvent
	for _, c := range changes {
		for _, e := range Events(c, now) {
			if isDeploy(e.Type) {
				out = append(out, e)
			}
		}
	}
	return out
}

// deliveriesOf pairs one event with the hooks that want it.
func deliveriesOf(e model.HookEvent, hooks []model.Hook, now time.Time) []model.HookDelivery {
	var out []model.HookDelivery
	for _, h := range hooks {
		// A hook gets the events of changes made after it was added; a
		// certificate's coming expiry is news whenever it was added.
		if wants(h, e.Type) && (h.Revision < e.Revision || e.Type == model.EventCertExpiring) {
			out = append(out, model.HookDelivery{Event: e, Hook: h.ID, NextAttempt: now.UTC()})
		}
	}
	return out
}

// deliveries pairs events with the hooks that want them.
func deliveries(changes []state.SiteChange, hooks []model.Hook, now time.Time) []model.HookDelivery {
	var out []model.HookDelivery
	for _, c := range changes {
		for _, e := range Events(c, now) {
			out = append(out, deliveriesOf(e, hooks, now)...)
		}
	}
	return out
}

func wants(h model.Hook, typ string) bool { return slices.Contains(h.Events, typ) }
