package daemon

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/cluster"
	"github.com/sitefleet/sitefleet/node"
	"github.com/sitefleet/sitefleet/state"
	"github.com/sitefleet/sitefleet/webserver"
)

// localStatus is this node's own status: the reconciler's and nginx's,
// as the API reports it and as the fleet registry records it.
type localStatus struct {
	name string
	api  string
	node *node.Node
	web  *webserver.Server

	// draining is set when the node starts to drain: it is not ready.
	draining atomic.Bool

	mu             sync.Mutex
	unhealthySince time.Time
}

// statusAdapter answers the API's status questions: this node's status
// with its place in the fleet, the fleet's view, previews and deploy
// progress.
type statusAdapter struct {
	local   *localStatus
	member  *cluster.Member
	etcd    *cluster.Etcd
	keys    state.Keys
	timeout time.Duration
}

func (a *statusAdapter) NodeStatus() client.NodeStatus {
	st := a.local.status()
	st.Leader = a.member.IsLeader()
	st.RegistryError = a.member.LastError()
	return st
}

// status is the node's status without its place in the fleet.
func (l *localStatus) status() client.NodeStatus {
	ns, ws := l.node.Status(), l.web.Status()
	return client.NodeStatus{
		Node:            l.name,
		Version:         Version,
		Ready:           ns.Applied && ws.Running && !l.draining.Load(),
		Draining:        l.draining.Load(),
		AppliedRevision: ns.AppliedRevision,
		AppliedAt:       timePtr(ns.AppliedAt),
		DesiredRevision: ns.DesiredRevision,
		Stale:           ns.Stale(),
		StaleSince:      timePtr(ns.StaleSince),
		FromCache:       ns.FromCache,
		PendingImport:   ns.PendingImport,
		Etcd:            client.EtcdStatus{Reachable: ns.EtcdReachable},
		Nginx: client.NginxStatus{
			Running: ws.Running, PID: ws.PID, Generation: ws.Generation,
			LastApply: timePtr(ws.LastApply), LastError: ws.LastError, Restarts: ws.Restarts, Reloads: ws.Reloads,
		},
		Sites:       ns.Sites,
		SiteErrors:  ns.SiteErrors,
		LastError:   ns.LastError,
		LastErrorAt: timePtr(ns.LastErrorAt),
	}
}

// record is what the node publishes in the fleet registry (the member
// adds its identity and leadership).
func (l *localStatus) record() cluster.NodeRecord {
	st := l.status()
	r := cluster.NodeRecord{
		Version: Version, APIAddress: l.api,
		AppliedRevision: st.AppliedRevision, DesiredRevision: st.DesiredRevision,
		Ready: st.Ready, Stale: st.Stale, NginxRunning: st.Nginx.Running, Sites: st.Sites,
		SiteErrors: st.SiteErrors, LastError: st.LastError,
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case r.Healthy():
		l.unhealthySince = time.Time{}
	case l.unhealthySince.IsZero():
		l.unhealthySince = time.Now().UTC()
	}
	r.UnhealthySince = timePtr(l.unhealthySince)
	return r
}

func (a *statusAdapter) Preview(ctx context.Context) (client.Preview, error) {
	p, err := a.local.node.Preview(ctx)
	if err != nil {
		return client.Preview{}, err
	}
	return client.Preview{AppliedRevision: p.AppliedRevision, DesiredRevision: p.DesiredRevision, PendingImport: p.PendingImport, Changes: p.Changes}, nil
}

func (a *statusAdapter) Cluster(ctx context.Context) (client.ClusterStatus, error) {
	rctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	v, err := cluster.ReadView(rctx, a.etcd.Client, a.keys)
	if err != nil {
		if ctx.Err() == nil && state.IsUnavailable(err) {
			return client.ClusterStatus{}, &state.Error{Code: state.Unavailable, Message: fmt.Sprintf("the state store (etcd) is unreachable: reading the cluster did not complete within %s", a.timeout), Err: err}
		}
		return client.ClusterStatus{}, err
	}
	out := client.ClusterStatus{StateRevision: v.StateRevision, StateChangedAt: timePtr(v.StateChangedAt), Leader: v.Leader, Nodes: []client.ClusterNode{}}
	for _, n := range v.Nodes {
		cn := client.ClusterNode{
			Name: n.Name, Live: n.Live, Leader: n.Leader, Version: n.Version, APIAddress: n.APIAddress,
			StartedAt: n.StartedAt, LastSeen: n.LastSeen, AppliedRevision: n.AppliedRevision,
			Drifted: v.Drifted(n), Ready: n.Ready, Stale: n.Stale, Healthy: n.Healthy(),
			UnhealthySince: n.UnhealthySince, LastError: n.LastError, SiteErrors: n.SiteErrors,
		}
		if cn.Drifted {
			cn.DriftedSince = timePtr(v.StateChangedAt)
		}
		out.Nodes = append(out.Nodes, cn)
	}
	return out, nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// WaitDeployed returns once every live node serves the state at rev
// without an error for domain, or ctx ends (see cluster.WaitDeployed).
func (a *statusAdapter) WaitDeployed(ctx context.Context, domain string, rev int64) (client.DeployWait, error) {
	p, err := cluster.WaitDeployed(ctx, a.etcd.Client, a.keys, domain, rev, a.timeout)
	out := client.DeployWait{Done: p.Done, Nodes: []client.DeployNodeWait{}}
	for _, n := range p.Nodes {
		out.Nodes = append(out.Nodes, client.DeployNodeWait{Node: n.Node, AppliedRevision: n.AppliedRevision, Serving: n.Serving, Error: n.Error})
	}
	return out, err
}

// readinessPoll is how often the health path's answer is brought in line
// with the node's readiness.
const readinessPoll = 100 * time.Millisecond

// followReadiness makes webserver.HealthPath answer what /readyz does,
// until ctx ends; then it answers 503, for nginx may outlive the node.
func (p *parts) followReadiness(ctx context.Context) {
	t := time.NewTicker(readinessPoll)
	defer t.Stop()
	known, last := false, false
	for {
		ready := p.self.status().Ready
		if !known || ready != last {
			if err := p.web.SetReady(ready); err != nil {
				p.log.Warn("could not update the health path", "err", err)
			} else {
				known, last = true, ready
			}
		}
		select {
		case <-ctx.Done():
			if err := p.web.SetReady(false); err != nil {
				p.log.Warn("could not update the health path", "err", err)
			}
			return
		case <-t.C:
		}
	}
}
