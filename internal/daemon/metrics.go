package daemon

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sitefleet/sitefleet/api"
	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/cluster"
	"github.com/sitefleet/sitefleet/state"
	"github.com/sitefleet/sitefleet/traffic"
)

// metricsHandler serves the node's metrics from its own registry: Go and
// process metrics, and gauges read from the node's status at scrape time.
func metricsHandler(status api.StatusSource, certs func() []state.Certificate, passes *prometheus.HistogramVec, etcd etcdCollector, sites *traffic.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStatusCollector(status), certCollector{certs}, passes, etcd)
	if sites != nil {
		reg.MustRegister(sites)
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// newPassHistogram is the duration of reconcile passes that applied a
// state (result "applied") or failed to ("failed").
func newPassHistogram() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sitefleet_reconcile_duration_seconds",
		Help:    "How long reconcile passes took, from reading the state to serving it.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"result"})
}

// observePass records one pass in h.
func observePass(h *prometheus.HistogramVec) func(time.Duration, error) {
	return func(took time.Duration, err error) {
		result := "applied"
		if err != nil {
			result = "failed"
		}
		h.WithLabelValues(result).Observe(took.Seconds())
	}
}

// certExpiry is the expiry of each certificate the node serves, for
// alerts on certificates that renewal did not replace.
var certExpiry = prometheus.NewDesc("sitefleet_certificate_expiry_timestamp_seconds",
	"When a certificate of the applied state expires (Unix time).", []string{"id", "type"}, nil)

type certCollector struct{ certs func() []state.Certificate }

func (c certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- certExpiry }

func (c certCollector) Collect(ch chan<- prometheus.Metric) {
	for _, cert := range c.certs() {
		ch <- prometheus.MustNewConstMetric(certExpiry, prometheus.GaugeValue, float64(cert.NotAfter.Unix()), cert.ID, string(cert.Type))
	}
}

// statusGauge is one gauge derived from the node's status.
type statusGauge struct {
	desc  *prometheus.Desc
	value func(client.NodeStatus) float64
}

// statusCollector reads the node's status once per scrape and derives
// every gauge from that one reading.
type statusCollector struct {
	status api.StatusSource
	gauges []statusGauge
}

func newStatusCollector(status api.StatusSource) *statusCollector {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	g := func(name, help string, f func(client.NodeStatus) float64) statusGauge {
		return statusGauge{prometheus.NewDesc("sitefleet_"+name, help, nil, nil), f}
	}
	return &statusCollector{status: status, gauges: []statusGauge{
		g("applied_revision", "State revision nginx serves.", func(s client.NodeStatus) float64 { return float64(s.AppliedRevision) }),
		g("desired_revision", "Revision of the latest state read from etcd.", func(s client.NodeStatus) float64 { return float64(s.DesiredRevision) }),
		g("ready", "1 while nginx serves an applied state.", func(s client.NodeStatus) float64 { return b(s.Ready) }),
		g("etcd_reachable", "1 while etcd answers.", func(s client.NodeStatus) float64 { return b(s.Etcd.Reachable) }),
		g("stale_seconds", "Seconds since etcd became unreachable; 0 while it is reachable.", func(s client.NodeStatus) float64 {
			if s.StaleSince != nil {
				return time.Since(*s.StaleSince).Seconds()
			}
			return 0
		}),
		g("nginx_running", "1 while nginx runs.", func(s client.NodeStatus) float64 { return b(s.Nginx.Running) }),
		g("nginx_restarts", "Times nginx was restarted after it died.", func(s client.NodeStatus) float64 { return float64(s.Nginx.Restarts) }),
		g("sites", "Sites applied.", func(s client.NodeStatus) float64 { return float64(s.Sites) }),
		g("site_errors", "Sites whose latest state could not be applied.", func(s client.NodeStatus) float64 { return float64(len(s.SiteErrors)) }),
		g("last_pass_failed", "1 when the latest reconcile pass failed.", func(s client.NodeStatus) float64 { return b(s.LastError != "") }),
		g("leader", "1 while this node leads the fleet.", func(s client.NodeStatus) float64 { return b(s.Leader) }),
	}}
}

// siteError names each site whose latest state is not served, with the
// reason (nginx's message when nginx refused it), cut to maxReasonLabel
// bytes.
var siteError = prometheus.NewDesc("sitefleet_site_error",
	"1 for each site whose latest state is not served; it keeps its last good state.", []string{"site", "reason"}, nil)

const maxReasonLabel = 200

// nginxReloads counts the configs nginx loaded.
var nginxReloads = prometheus.NewDesc("sitefleet_nginx_reloads_total",
	"Configs nginx loaded since the node started; deploys, rollbacks, certificates and plain sites need none.", nil, nil)

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, g := range c.gauges {
		ch <- g.desc
	}
	ch <- siteError
	ch <- nginxReloads
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status.NodeStatus()
	for _, g := range c.gauges {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, g.value(st))
	}
	ch <- prometheus.MustNewConstMetric(nginxReloads, prometheus.CounterValue, float64(st.Nginx.Reloads))
	for site, reason := range st.SiteErrors {
		if len(reason) > maxReasonLabel {
			reason = strings.ToValidUTF8(reason[:maxReasonLabel], "") + "..."
		}
		ch <- prometheus.MustNewConstMetric(siteError, prometheus.GaugeValue, 1, site, reason)
	}
}

// The etcd figures, read from the member this node talks to at scrape
// time, and this node's compactions (as leader) and defragmentations (of
// its embedded member).
var (
	etcdDBSize      = prometheus.NewDesc("sitefleet_etcd_db_size_bytes", "Size of the etcd member's database file.", nil, nil)
	etcdDBSizeInUse = prometheus.NewDesc("sitefleet_etcd_db_size_in_use_bytes", "What of the etcd member's database file holds data; the rest is free pages.", nil, nil)
	etcdQuota       = prometheus.NewDesc("sitefleet_etcd_quota_bytes", "The embedded etcd member's backend quota; past it etcd refuses writes.", nil, nil)
	etcdRevision    = prometheus.NewDesc("sitefleet_etcd_revision", "The etcd cluster's current revision.", nil, nil)
	etcdCompacted   = prometheus.NewDesc("sitefleet_etcd_compacted_revision", "The revision of the latest compaction this node made as leader.", nil, nil)
	etcdCompactions = prometheus.NewDesc("sitefleet_etcd_compactions_total", "Compactions of etcd's history this node made as leader.", nil, nil)
	etcdDefrags     = prometheus.NewDesc("sitefleet_etcd_defragmentations_total", "Defragmentations of the embedded etcd member.", nil, nil)
)

type etcdCollector struct {
	etcd        *cluster.Etcd
	compactions *cluster.CompactStats
	timeout     time.Duration
}

func (c etcdCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{etcdDBSize, etcdDBSizeInUse, etcdQuota, etcdRevision, etcdCompacted, etcdCompactions, etcdDefrags} {
		ch <- d
	}
}

func (c etcdCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(etcdCompacted, prometheus.GaugeValue, float64(c.compactions.Revision()))
	ch <- prometheus.MustNewConstMetric(etcdCompactions, prometheus.CounterValue, float64(c.compactions.Compactions()))
	ch <- prometheus.MustNewConstMetric(etcdDefrags, prometheus.CounterValue, float64(c.etcd.Defrags()))
	ctx, cancel := context.WithTimeout(context.Background(), min(c.timeout, 2*time.Second))
	defer cancel()
	st, err := c.etcd.Status(ctx)
	if err != nil {
		return // etcd_reachable says so
	}
	ch <- prometheus.MustNewConstMetric(etcdDBSize, prometheus.GaugeValue, float64(st.DBSize))
	ch <- prometheus.MustNewConstMetric(etcdDBSizeInUse, prometheus.GaugeValue, float64(st.DBSizeInUse))
	ch <- prometheus.MustNewConstMetric(etcdRevision, prometheus.GaugeValue, float64(st.Revision))
	if st.Quota > 0 {
		ch <- prometheus.MustNewConstMetric(etcdQuota, prometheus.GaugeValue, float64(st.Quota))
	}
}
