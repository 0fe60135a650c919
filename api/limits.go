package api

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// Connection and request limits of the API server. A connection is closed
// when it idles past IdleTimeout or takes more than ReadHeaderTimeout to
// send a request's headers; a request's body must arrive, and its answer
// leave, within its deadline (RequestTimeout, or UploadTimeout for uploads
// and transfers between nodes; a deployment's ?wait= extends its answer's
// deadline by the wait).
const (
	DefaultIdleTimeout    = 30 * time.Second
	DefaultRequestTimeout = 60 * time.Second
	DefaultUploadTimeout  = 30 * time.Minute
	// DefaultMaxUploads bounds the uploads (bundles, trees and objects
	// batches) a node takes at once; the CLI sends four batches at a time.
	DefaultMaxUploads = 16
	// ReadHeaderTimeout bounds how long a client may take to send a
	// request's headers.
	ReadHeaderTimeout = 10 * time.Second
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes = 64 << 10
	// uploadQueueWait is how long an upload waits for a free slot before
	// it is refused with 503.
	uploadQueueWait = 10 * time.Second
)

// NewServer returns the http.Server that serves handler with the API's
// connection limits; idle is the keep-alive idle timeout (0: the default).
func NewServer(handler http.Handler, idle time.Duration, log *slog.Logger) *http.Server {
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	if log == nil {
		log = slog.Default()
	}
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       idle,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// deadline sets the read and write deadlines of a request's connection to
// d from now. The body of a request that has not arrived by then fails to
// read, and an answer that has not left by then is cut off.
func deadline(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			extendDeadline(w, d)
			next.ServeHTTP(w, r)
		})
	}
}

// extendDeadline moves the request's read and write deadlines to d from
// now. Where the connection does not support deadlines (a test recorder),
// nothing changes.
func extendDeadline(w http.ResponseWriter, d time.Duration) {
	rc := http.NewResponseController(w)
	at := time.Now().Add(d)
	_ = rc.SetReadDeadline(at)
	_ = rc.SetWriteDeadline(at)
}

// uploadSlots bounds the uploads in progress: a request waits up to
// uploadQueueWait for a slot, then gets 503 with Retry-After.
type uploadSlots struct {
	slots chan struct{}
	wait  time.Duration
}

func newUploadSlots(n int) *uploadSlots {
	if n <= 0 {
		n = DefaultMaxUploads
	}
	return &uploadSlots{slots: make(chan struct{}, n), wait: uploadQueueWait}
}

func (u *uploadSlots) middleware(writeError func(http.ResponseWriter, *http.Request, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t := time.NewTimer(u.wait)
			defer t.Stop()
			select {
			case u.slots <- struct{}{}:
			case <-t.C:
				w.Header().Set("Retry-After", strconv.Itoa(int(u.wait.Seconds())))
				writeError(w, r, httpError(http.StatusServiceUnavailable,
					"this node is taking %d uploads at once already (api.maxConcurrentUploads); retry in a few seconds", cap(u.slots)))
				return
			case <-r.Context().Done():
				return
			}
			defer func() { <-u.slots }()
			next.ServeHTTP(w, r)
		})
	}
}
