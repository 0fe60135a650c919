package webserver

import "fmt"

// Protected sites: nginx asks the node about every request (auth_request),
// and the node answers 2xx to let it through, or 401 with the challenge.
// nginx knows only that a site is protected; who may enter, and where, is
// the node's, so changing users or paths reloads nothing, and the node
// checks passwords where a slow hash does not stall nginx's workers.
const (
	// AuthPath is the path on Plan.AuthUpstream that nginx asks.
	AuthPath = "/v1/auth/check"
	// AuthHostHeader carries the request's host ($host: lower case,
	// without port) and AuthURIHeader its target as the client sent it
	// ($request_uri); the node normalises the path as nginx does.
	AuthHostHeader = "X-Sitefleet-Host"
	AuthURIHeader  = "X-Sitefleet-Request-Uri"
)

// authLocation is the internal location of the auth subrequest.
const authLocation = "/.sitefleet-auth"

// authUpstream is the upstream block of the node's auth checks, in the
// rules file (http level) when a site is protected: connections to the
// node are kept open, so a check costs a request, not a TCP handshake.
func authUpstream(up listenAddr) string {
	return "upstream " + authUpstreamName + " {\n    server " + up.dialAddr() + ";\n    keepalive 16;\n}\n"
}

const authUpstreamName = "sf_auth"

// authBlock is what a protected server adds: the check on every request,
// the challenge passed on with a 401, and the subrequest to the node. The
// client's Authorization header goes with it, as nginx passes request
// headers; the body does not.
func authBlock() string {
	return fmt.Sprintf(`    auth_request %[1]s;
    auth_request_set $sf_auth_challenge $upstream_http_www_authenticate;
    add_header WWW-Authenticate $sf_auth_challenge always;
    location = %[1]s {
        internal;
        proxy_pass http://%[2]s%[3]s;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header %[4]s $host;
        proxy_set_header %[5]s $request_uri;
        proxy_connect_timeout 5s;
        proxy_read_timeout 15s;
    }
`, authLocation, authUpstreamName, AuthPath, AuthHostHeader, AuthURIHeader)
}

// ownServer reports whether s is served by a server of its own: it has
// rules, or is protected.
func (s Site) ownServer() bool { return !s.Rules.Empty() || s.Protected }
