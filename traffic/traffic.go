// Package traffic turns the traffic log nginx writes (one line per
// request, webserver.TrafficLogFormat) into per-site Prometheus metrics
// and, optionally, a JSON access log.
//
// nginx appends to the log from a 64 KiB buffer flushed at least every
// second, so serving costs a copy into that buffer per request and a
// write per 64 KiB; nothing in the request path waits for the node. The
// Collector reads what was appended once a second and truncates the file
// once it has read past MaxBytes (nginx opens it with O_APPEND, so its
// next write lands at the new end). Lines appended between that last
// read and the truncation are lost: a few milliseconds' worth, once per
// MaxBytes of log.
//
// Cardinality is bounded: a request counts for its site (the host
// resolved to the site's primary domain) only if the site is one of the
// first MaxSites sites seen since the node started; requests to further
// sites count under the site "_other", and those for hosts no site
// serves under "_unknown". A hostile Host header therefore never makes a
// series.
package traffic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values for requests that do not count for a site of their own.
const (
	OtherSites   = "_other"
	UnknownHosts = "_unknown"
)

// Buckets are the request-duration histogram's upper bounds, in seconds.
var Buckets = []float64{0.001, 0.005, 0.025, 0.1, 0.5, 2.5}

// Resolver maps a host name to the primary domain of the site that
// serves it, and says whether the host is one of the site's previews.
type Resolver interface {
	SiteOf(host string) (site string, preview, ok bool)
}

// Options configure a Collector.
type Options struct {
	// Path is the traffic log nginx appends to.
	Path string
	// Sites resolves hosts; it is asked again for every host after
	// Changed is called.
	Sites Resolver
	// MaxSites is how many sites get series of their own (default 1000).
	MaxSites int
	// JSON, if set, receives one JSON object per request and line.
	JSON io.Writer
	// MaxBytes is the size past which the log is truncated once read
	// (default 16 MiB).
	MaxBytes int64
	// Interval is how often the log is read (default 1s).
	Interval time.Duration
	Logger   *slog.Logger
}

// Collector reads the traffic log; it is a prometheus.Collector.
type Collector struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	sites map[string]*stats    // by label: a site's domain, OtherSites or UnknownHosts
	hosts map[string]hostLabel // as resolved since the last Changed
	lines uint64               // lines read
	bad   uint64               // lines that did not parse

	// Owned by Run.
	file   *os.File
	offset int64
	rest   []byte // a line not yet complete
	buf    []byte
	// skip: the line being read is past maxLine; its bytes up to the next
	// newline are dropped (it was counted bad once).
	skip bool
	// json holds the JSON lines of one read, written once per read and
	// outside mu, so a slow reader of them never holds up /metrics.
	json bytes.Buffer
}

// stats are one label's counters.
type stats struct {
	classes [5]uint64 // 1xx .. 5xx
	bytes   uint64
	buckets []uint64 // cumulative counts are made when collected
	count   uint64
	sum     float64
}

// New returns a Collector; Run makes it read.
func New(opts Options) *Collector {
	if opts.MaxSites <= 0 {
		opts.MaxSites = 1000
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 16 << 20
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Collector{opts: opts, log: log, sites: map[string]*stats{}, hosts: map[string]hostLabel{}}
}

// Changed forgets how hosts were resolved: the sites changed.
func (c *Collector) Changed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.hosts)
}

// Run reads the log every Interval until ctx ends, and once more then.
func (c *Collector) Run(ctx context.Context) error {
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	defer func() {
		if c.file != nil {
			c.file.Close()
			c.file = nil
		}
	}()
	for {
		if err := c.ReadOnce(); err != nil {
			c.log.Warn("traffic log: read failed", "path", c.opts.Path, "err", err)
		}
		select {
		case <-ctx.Done():
			if err := c.ReadOnce(); err != nil {
				c.log.Warn("traffic log: read failed", "path", c.opts.Path, "err", err)
			}
			return nil
		case <-t.C:
		}
	}
}

// maxRead bounds one read of the log.
const maxRead = 1 << 20

// ReadOnce reads what was appended to the log since the last call and
// counts it. Run calls it; tests may too.
func (c *Collector) ReadOnce() error {
	if c.file == nil {
		f, err := os.Open(c.opts.Path)
		if errors.Is(err, os.ErrNotExist) {
			return nil // nginx has not served a request yet
		}
		if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		c.file, c.offset, c.rest, c.skip = f, 0, nil, false
	}
	fi, err := c.file.Stat()
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if fi.Size() < c.offset {
		c.offset, c.rest, c.skip = 0, nil, false // truncated by someone else
	}
	for c.offset < fi.Size() {
		want := int(min(int64(maxRead), fi.Size()-c.offset))
		if len(c.buf) < want {
			c.buf = make([]byte, want) // kept: the next reads are alike
		}
		buf := c.buf[:want]
		n, err := c.file.ReadAt(buf, c.offset)
		c.offset += int64(n)
		c.consume(buf[:n])
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			break
		}
	}
	if c.offset >= c.opts.MaxBytes && len(c.rest) == 0 && !c.skip {
		if err := os.Truncate(c.opts.Path, 0); err != nil {
			return fmt.Errorf("truncate: %w", err)
		}
		c.offset = 0
	}
	return nil
}

// maxLine bounds a line: a longer one is dropped as bad.
const maxLine = 4096

// consume counts the complete lines of data, keeping an incomplete last
// one for the next read. A line longer than maxLine is counted bad once,
// whether it arrives whole or across reads; none of its bytes count as
// a line of their own.
func (c *Collector) consume(data []byte) {
	if len(c.rest) > 0 {
		data = append(c.rest, data...)
		c.rest = nil
	}
	c.mu.Lock()
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if c.skip {
			if i < 0 {
				break
			}
			c.skip, data = false, data[i+1:]
			continue
		}
		if i < 0 {
			if len(data) <= maxLine {
				c.rest = append([]byte(nil), data...)
			} else {
				c.lines++
				c.bad++
				c.skip = true
			}
			break
		}
		if i > maxLine {
			c.lines++
			c.bad++
		} else {
			c.line(data[:i])
		}
		data = data[i+1:]
	}
	c.mu.Unlock()
	if c.json.Len() > 0 {
		_, _ = c.opts.JSON.Write(c.json.Bytes())
		c.json.Reset()
	}
}

// entry is one request, as the JSON log writes it.
type entry struct {
	Time     string  `json:"time"`
	Site     string  `json:"site"`
	Host     string  `json:"host"`
	Status   int     `json:"status"`
	Bytes    uint64  `json:"bytes"`
	Duration float64 `json:"duration"`
	Preview  bool    `json:"preview,omitempty"`
}

// hostLabel is how a host counts: its site label, and whether it is a
// preview's.
type hostLabel struct {
	label   string
	preview bool
}

// line counts one line; the caller holds mu. It allocates nothing for a
// host seen before unless the JSON log is on.
func (c *Collector) line(l []byte) {
	c.lines++
	f, ok := split(l)
	if !ok {
		c.bad++
		return
	}
	hl := c.label(f.host)
	label := hl.label
	s := c.sites[label]
	if s == nil {
		s = &stats{buckets: make([]uint64, len(Buckets))}
		c.sites[label] = s
	}
	if f.status >= 100 && f.status < 600 {
		s.classes[f.status/100-1]++
	}
	s.bytes += f.bytes
	s.count++
	dur := float64(f.millis) / 1000
	s.sum += dur
	for i, b := range Buckets {
		if dur <= b {
			s.buckets[i]++
			break
		}
	}
	if c.opts.JSON != nil {
		e := entry{Time: f.time.Format(time.RFC3339Nano), Site: label, Host: string(f.host), Status: f.status, Bytes: f.bytes, Duration: dur, Preview: hl.preview}
		if b, err := json.Marshal(e); err == nil {
			c.json.Write(b)
			c.json.WriteByte('\n')
		}
	}
}

// label is the site label of host; the caller holds mu.
func (c *Collector) label(host []byte) hostLabel {
	if l, ok := c.hosts[string(host)]; ok {
		return l
	}
	h := string(host)
	l := hostLabel{label: UnknownHosts}
	if site, preview, ok := c.opts.Sites.SiteOf(h); ok {
		l = hostLabel{label: site, preview: preview}
		if _, has := c.sites[site]; !has && c.siteCount() >= c.opts.MaxSites {
			l.label = OtherSites
		}
	}
	if len(c.hosts) < 4*c.opts.MaxSites {
		c.hosts[h] = l
	}
	return l
}

// siteCount is how many sites have series of their own.
func (c *Collector) siteCount() int {
	n := len(c.sites)
	for _, l := range []string{OtherSites, UnknownHosts} {
		if _, ok := c.sites[l]; ok {
			n--
		}
	}
	return n
}

// fields are one line's values.
type fields struct {
	time   time.Time
	host   []byte
	status int
	bytes  uint64
	millis uint64 // the request's duration
}

// split reads "<msec> <host> <status> <bytes> <seconds>" without
// allocating. The host is whatever lies between the first field and the
// last three: nginx lets a Host header hold spaces, and such a host is
// simply unknown. nginx writes $msec and $request_time with exactly three
// decimals.
func split(l []byte) (fields, bool) {
	var f fields
	first := bytes.IndexByte(l, ' ')
	if first <= 0 {
		return f, false
	}
	rest := l[first+1:]
	var tail [3][]byte
	for i := 2; i >= 0; i-- {
		j := bytes.LastIndexByte(rest, ' ')
		if j < 0 {
			return f, false
		}
		tail[i], rest = rest[j+1:], rest[:j]
	}
	if len(rest) == 0 {
		return f, false
	}
	f.host = rest
	status, ok1 := digits(tail[0])
	sent, ok2 := digits(tail[1])
	millis, ok3 := decimal3(tail[2])
	secs, ok4 := decimal3(l[:first])
	if !ok1 || !ok2 || !ok3 || !ok4 || status > 999 || secs/1000 > 1<<40 {
		return f, false
	}
	f.status, f.bytes, f.millis = int(status), sent, millis
	f.time = time.UnixMilli(int64(secs)).UTC()
	return f, true
}

// digits reads a decimal number of at most 19 digits.
func digits(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + uint64(ch-'0')
	}
	return n, true
}

// decimal3 reads "N.ddd" as thousandths.
func decimal3(b []byte) (uint64, bool) {
	if len(b) < 5 || b[len(b)-4] != '.' {
		return 0, false
	}
	whole, ok1 := digits(b[:len(b)-4])
	frac, ok2 := digits(b[len(b)-3:])
	if !ok1 || !ok2 || whole > 1<<50 {
		return 0, false
	}
	return whole*1000 + frac, true
}

var (
	requestsDesc = prometheus.NewDesc("sitefleet_site_requests_total",
		"Requests nginx answered, by site and status class (sites past web.traffic.maxSites count as _other, hosts no site serves as _unknown).",
		[]string{"site", "code"}, nil)
	bytesDesc = prometheus.NewDesc("sitefleet_site_sent_bytes_total",
		"Bytes nginx sent, headers included, by site.", []string{"site"}, nil)
	durationDesc = prometheus.NewDesc("sitefleet_site_request_duration_seconds",
		"Time nginx took per request, from its first byte read to its last byte sent, by site.", []string{"site"}, nil)
	linesDesc = prometheus.NewDesc("sitefleet_traffic_log_lines_total",
		"Lines read from nginx's traffic log, and those that did not parse.", []string{"result"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- bytesDesc
	ch <- durationDesc
	ch <- linesDesc
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	send := func(m prometheus.Metric, err error) {
		if err == nil {
			ch <- m
		}
	}
	for site, s := range c.sites {
		for i, n := range s.classes {
			send(prometheus.NewConstMetric(requestsDesc, prometheus.CounterValue, float64(n), site, strconv.Itoa(i+1)+"xx"))
		}
		send(prometheus.NewConstMetric(bytesDesc, prometheus.CounterValue, float64(s.bytes), site))
		cum, buckets := uint64(0), make(map[float64]uint64, len(Buckets))
		for i, b := range Buckets {
			cum += s.buckets[i]
			buckets[b] = cum
		}
		send(prometheus.NewConstHistogram(durationDesc, s.count, s.sum, buckets, site))
	}
	send(prometheus.NewConstMetric(linesDesc, prometheus.CounterValue, float64(c.lines-c.bad), "ok"))
	send(prometheus.NewConstMetric(linesDesc, prometheus.CounterValue, float64(c.bad), "bad"))
}
