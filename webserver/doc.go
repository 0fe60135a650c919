// Package webserver drives a local nginx that serves sitefleet's static
// sites. It knows nothing of etcd: callers hand it a plain Plan, and it
// renders the nginx config, stages it, has `nginx -t` check the staged tree,
// swaps it live atomically, reloads nginx gracefully and, when asked to,
// runs and supervises the nginx process.
//
// # One server, links instead of maps
//
// The config does not contain one server block per site: that would make
// nginx slow to load and large in memory at 10,000+ sites. A single
// catch-all server (default_server) serves every site from
// `root <Prefix>/hosts/$host`: <Prefix>/hosts/<name> is a symlink to the
// directory the name serves (Site.Root, or Plan.PlaceholderRoot), made for
// the domain and every alias that does not redirect. A deploy, a
// rollback, adding or removing a plain site and adding a serving alias
// switch, create or remove links with one rename each, without a reload:
// nginx resolves the link at every request. Certificates work the same
// way (<Prefix>/certs/<name> -> a set holding chain.pem and key.pem,
// loaded per handshake), so issues and renewals need no reload either. See
// hosts.go. Files are served with `try_files $uri $uri.html $uri/` and
// `index index.html`, with Content-Types from a mime table shipped in this
// package.
//
// What nginx must know when it loads its config stays in `map` blocks
// keyed by $host (with the `hostnames` parameter, i.e. a hash lookup):
// redirecting aliases ($sf_redirect: 301 to the primary domain, keeping
// the port the client put in its Host header), hosts whose /page.html
// redirects to /page, the names served over HTTPS, HTTPS redirects and
// HSTS. Changing those, or a site's rules, reloads nginx. Every per-request
// variable is a hash lookup; the regex maps run only for the hosts that
// ask for them.
//
// map_hash_max_size and map_hash_bucket_size are derived from the number and
// length of the names in those maps, rounded up to powers of two, so that
// plans of 20,000+ names of up to 253 characters load without errors or
// warnings, and plain sites never change them.
//
// A request for a host that has no link gets status 404 with Content-Type
// text/plain and exactly the body UnknownHostBody:
//
//	sitefleet: no site is configured for this host
//
// # Isolation
//
// Apply serves a plan site by site: a site whose values Render refuses or
// whose config nginx refuses keeps the form it was live in (see Result).
//
// # Generations and the atomic swap
//
// Render turns a Plan into a set of files, a generation, identified by a hash
// of those files (excluding the file that embeds the id). Apply writes a new
// generation into its own directory, runs `nginx -t` against that staged
// tree, and only if it passes renames a fresh symlink over <Prefix>/conf, which
// is atomic: nginx is always started and reloaded with
// -c <Prefix>/conf/nginx.conf, so it sees either the old or the new
// generation, never a mix. Includes inside nginx.conf are relative, so they
// resolve inside the generation being tested or loaded. Operator files
// (Options.ExtraHTTPConfigFiles) are copied into each generation: a broken
// one fails the test and never goes live, and restarts use the last good
// copy. Rendering the same plan again yields the same id, and Apply then does
// nothing at all. The live and the previous generation are kept; older and
// failed ones are removed. After a restart of the process, the generation
// <Prefix>/conf points to (if its files still hash to its id) counts as live.
//
// # Probe server
//
// Each generation contains a second server on the same listen address with
// server_name ProbeHost ("sitefleet-probe.invalid"); GET /generation with
// that Host answers the generation id. After a reload Apply polls it (on
// loopback when nginx listens on a wildcard address) until the new id is
// served and every worker of the old generation has stopped accepting
// connections, so that a request sent after Apply returns sees the new
// config. A reload that is not observed within Options.ReloadTimeout is
// rolled back on disk and reported.
//
// # Running nginx
//
// With Options.Manage, Run starts nginx as a child (daemon off, error_log to
// stderr, which is forwarded line by line to the slog logger), in its own
// process group so that workers orphaned by a crashed master can be killed
// before a restart. Apply reloads it with SIGHUP. If nginx dies, Run restarts
// it with exponential backoff. If the pid file names a live master whose
// command line has our config path (e.g. left running by a previous sitefleet
// process), Run adopts it instead of starting a second one, reloads it if it
// serves another generation, and watches it by polling /proc; its stderr
// still goes wherever it went before. When Run's context ends, nginx is
// stopped gracefully (SIGQUIT, then SIGTERM, then SIGKILL).
//
// Without Manage, someone else runs nginx with the same prefix and config
// path; Apply runs Options.ReloadCommand and watches the probe server.
//
// # Files
//
//	<Prefix>/conf                -> generations/<id> (symlink, swapped atomically)
//	<Prefix>/hosts/<name>        -> the name's document root (symlink)
//	<Prefix>/certs/<name>        -> certsets/<id> (symlink)
//	<Prefix>/certsets/<id>/      chain.pem, key.pem (symlinks to the caller's files)
//	<Prefix>/links.tmp/          where links are made before they are renamed
//	<Prefix>/tests/              throwaway trees for Test
//	<Prefix>/generations/<id>/   nginx.conf, mime.types, sites.conf, probe.conf, extra-NN-<name>
//	<Prefix>/run/nginx.pid       written by the nginx master
//	<Prefix>/logs/               error.log when unmanaged
//	<Prefix>/tmp/                client_body, proxy, fastcgi, uwsgi, scgi temp paths
//	                             (only for modules the binary was built with)
//
// Directories are 0755 and files 0644 so that workers, which run as
// Options.User when the process is root, can read what they need. The
// document roots and the placeholder must be readable by that user too; that
// is the caller's job.
package webserver
