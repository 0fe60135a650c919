package webserver

// intermediateCiphers is Mozilla's "intermediate" cipher list for TLS 1.2
// (OpenSSL names, colon-separated) for nginx's ssl_ciphers. TLS 1.3 suites
// are not configured by it.
const intermediateCiphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" +
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" +
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" +
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

// intermediateProtocols returns Mozilla's "intermediate" protocol versions
// for nginx's ssl_protocols, as a new slice on every call.
func intermediateProtocols() []string {
	return []string{"TLSv1.2", "TLSv1.3"}
}
