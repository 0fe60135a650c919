package testutil

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BareNginx serves root with a minimal nginx config (the baseline the
// benchmarks compare sitefleet's generated config with) on a free loopback
// port until the test ends, and returns the address. workers is the
// worker_processes value; cpus, when not "", pins nginx with taskset -c
// (if taskset exists). Workers run as nobody when the test runs as root.
func BareNginx(tb testing.TB, root, workers, cpus string) string {
	tb.Helper()
	dir := WorldReadableTempDir(tb)
	addr := FreeAddr(tb)
	userLine := ""
	if os.Geteuid() == 0 {
		group := "nobody"
		if _, err := user.LookupGroup("nogroup"); err == nil {
			group = "nogroup"
		}
		userLine = "user nobody " + group + ";"
	}
	conf := fmt.Sprintf(`%[1]s
worker_processes %[2]s;
daemon off;
pid %[3]s/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  default_type text/html;
  client_body_temp_path %[3]s/body;
  proxy_temp_path %[3]s/proxy;
  fastcgi_temp_path %[3]s/fastcgi;
  uwsgi_temp_path %[3]s/uwsgi;
  scgi_temp_path %[3]s/scgi;
  server { listen %[4]s; root %[5]s; index index.html; }
}
`, userLine, workers, dir, addr, root)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	bin := "nginx"
	if _, err := exec.LookPath(bin); err != nil {
		bin = "/usr/sbin/nginx"
	}
	name, args := bin, []string{"-p", dir, "-c", path}
	if _, err := exec.LookPath("taskset"); err == nil && cpus != "" {
		name, args = "taskset", append([]string{"-c", cpus, bin}, args...)
	}
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGQUIT); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return addr
		}
		if time.Now().After(deadline) {
			tb.Fatalf("bare nginx did not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
