// Package webserver drives a local nginx that serves sitefleet's static
// sites. It knows nothing of etcd: callers hand it a plain Plan, and it
// renders the nginx config, stages it, has `nginx -t` check the staged tree,
// swaps it live atomically, reloads nginx gracefully and, when asked to,
// runs and supervises the nginx process.
//
// # One server, many maps
//
// The config does not contain one server block per site: that would make
// nginx slow to load and large in memory at 10,000+ sites. Instead a single
// catch-all server (default_server) serves every site, and two `map` blocks
// keyed by $host (with the `hostnames` parameter, i.e. a hash lookup) choose
// what each request gets:
//
//   - $sf_root maps every domain, and every alias that does not redirect, to
//     its document root (Plan.PlaceholderRoot for sites without a Root).
//     Files are served with `try_files $uri $uri/ =404` and `index index.html`,
//     with Content-Types from a mime table shipped in this package.
//   - $sf_redirect maps every redirecting alias to its primary domain; such
//     requests get `301 $scheme://<domain><port>$request_uri`, where <port>
//     is the port the client put in its Host header, if any.
//
// map_hash_max_size and map_hash_bucket_size are derived from the number and
// length of the names, so that plans of 20,000+ names of up to 253
// characters load without errors or warnings.
//
// A request for a host that is not mapped gets status 404 with Content-Type
// text/plain and exactly the body UnknownHostBody:
//
//	sitefleet: no site is configured for this host
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
