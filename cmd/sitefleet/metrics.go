package main

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sitefleet/sitefleet/api"
)

// metricsHandler serves the node's metrics from its own registry: Go and
// process metrics, and gauges read from the node's status at scrape time.
func metricsHandler(status api.StatusSource) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "sitefleet", Name: name, Help: help}, f))
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	gauge("applied_revision", "State revision nginx serves.", func() float64 { return float64(status.NodeStatus().AppliedRevision) })
	gauge("desired_revision", "Revision of the latest state read from etcd.", func() float64 { return float64(status.NodeStatus().DesiredRevision) })
	gauge("ready", "1 while nginx serves an applied state.", func() float64 { return b(status.NodeStatus().Ready) })
	gauge("etcd_reachable", "1 while etcd answers.", func() float64 { return b(status.NodeStatus().Etcd.Reachable) })
	gauge("stale_seconds", "Seconds since etcd became unreachable; 0 while it is reachable.", func() float64 {
		if s := status.NodeStatus().StaleSince; s != nil {
			return time.Since(*s).Seconds()
		}
		return 0
	})
	gauge("nginx_running", "1 while nginx runs.", func() float64 { return b(status.NodeStatus().Nginx.Running) })
	gauge("nginx_restarts", "Times nginx was restarted after it died.", func() float64 { return float64(status.NodeStatus().Nginx.Restarts) })
	gauge("sites", "Sites applied.", func() float64 { return float64(status.NodeStatus().Sites) })
	gauge("site_errors", "Sites whose latest state could not be applied.", func() float64 { return float64(len(status.NodeStatus().SiteErrors)) })
	gauge("last_pass_failed", "1 when the latest reconcile pass failed.", func() float64 { return b(status.NodeStatus().LastError != "") })
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
