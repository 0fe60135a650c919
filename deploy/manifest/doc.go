// Package manifest parses and validates the Netlify-style _redirects and
// _headers files at the root of a site bundle into plain Go values, which
// a renderer turns into nginx config.
//
// # Safety
//
// A bundle must not be able to inject nginx config. Every value this
// package returns is checked against an allowlist of characters, so it
// can be placed inside a double-quoted nginx string or used to build an
// nginx location or rewrite pattern; anything else is refused with a
// *LineError naming the file, the line and the offending character.
// Nothing is escaped or cleaned. In particular no returned value holds a
// space, control character, non-ASCII character, quote, "$", "{", "}",
// ";" or "\". Literal segments may still hold "." and "*" may be a
// segment, so a renderer building a regular expression must quote the
// literal segments (regexp.QuoteMeta) itself.
//
// # _redirects
//
// One rule per line, fields separated by spaces or tabs:
//
//	FROM TO [STATUS[!]]
//
//	/*                  /index.html               200
//	/old                /new
//	/blog/:year/:slug   /posts/:year/:slug        301
//	/docs/*             /v2/docs/:splat           302!
//	/x                  https://example.com/y?a=1#f 308
//	/404-page           /404.html                 404
//
// Blank lines and lines starting with "#" (after optional spaces or tabs)
// are ignored.
//
// FROM is a path pattern (see Pattern): a leading "/", then segments of
// A-Z a-z 0-9 - . _ ~ % : *; a segment ":name" is a placeholder, with a
// name of [a-z][a-z0-9_]* up to 32 characters ("splat" is reserved); the
// whole last segment may be "*" (the splat), as in "/blog/*" or "/*".
//
// TO is either a path starting with "/" or an absolute URL: "http://" or
// "https://", a lower-case host of [a-z0-9.-] with an optional ":port",
// then an optional path. The path has the characters of FROM except "*";
// a ":" must start ":splat" (FROM must end in "*") or a placeholder FROM
// defines, e.g. "/posts/:year/:slug.html". An optional query string after
// "?" and fragment after "#" may hold A-Z a-z 0-9 - . _ ~ % = & + , only.
//
// STATUS is 301 (the default), 302, 303, 307, 308, 200 (a rewrite: serve
// TO, which must be a path) or 404 (serve TO, a path, with status 404). A
// trailing "!" (Force) applies the rule even when a file exists at the
// requested path.
//
// In every path "%" must be followed by two hex digits, and "//", "." and
// ".." segments (also percent-encoded, as "%2e%2e") are refused.
//
// Refused as unsupported, each with a message naming the feature:
// trailing comments after the fields, query-parameter matching (a
// "key=value" field), Country=, Language=, Role= and Cookie= conditions,
// domain-level rules (a URL as FROM), any other status code, proxying
// (status 200 or 404 to a URL), placeholders in TO that FROM does not
// define, and ":splat" in TO without "*" in FROM.
//
// # _headers
//
// Blocks of a path line (not indented; a Pattern as for FROM) followed by
// one or more indented lines (a leading space or tab) "Name: value":
//
//	/*
//	  X-Frame-Options: DENY
//	  Content-Security-Policy: default-src 'self'; img-src *
//	/assets/*
//	  Cache-Control: public, max-age=31536000, immutable
//
// Blank lines and "#" comments are allowed anywhere. Names match
// [A-Za-z0-9-]+, up to 64 characters; hop-by-hop, framing and
// server-managed headers are refused in any case: Connection, Keep-Alive,
// Transfer-Encoding, Content-Length, Upgrade, Proxy-*, TE, Trailer, Host,
// Date, Server and nginx's X-Accel-*. Values are trimmed and must be 1 to
// 1024 printable ASCII characters (0x20-0x7E) other than '"', '\', '$',
// '{' and '}'. A name may repeat within a block.
//
// Refused: an indented line before any path line, a path line without
// headers, a header line without ":", and Netlify's "! Name" syntax for
// unsetting a header.
//
// # Files and limits
//
// Lines end in "\n" or "\r\n" and must be valid UTF-8. Limits bounds the
// size of a file, the length of a line, the number of redirect rules,
// of header blocks and of headers in a block; exceeding one is a
// *LineError naming the limit. Load reads both files from a bundle's
// root; a missing file is not an error, and one that is not a regular
// file (a directory, a symbolic link, ...) is a *LineError with Line 0.
package manifest
