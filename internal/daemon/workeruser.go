package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"sync"
)

// WorkerUser is the user and group nginx workers run as when the node
// runs as root and web.nginx.user is not set: made for them alone, so
// that no other daemon shares the group that may read TLS keys, and
// unable to read the node's secrets (which are root's, mode 0600).
const WorkerUser = "sitefleet-www"

var workerUserMu sync.Mutex

// workerIdentity returns the web.nginx.user to use: the configured one,
// or, as root, WorkerUser (created as a system user and group if it does
// not exist). Not as root, workers run as the node's own user and
// configured is returned as it is.
func workerIdentity(configured string, log *slog.Logger) (string, error) {
	if configured != "" || os.Geteuid() != 0 {
		return configured, nil
	}
	workerUserMu.Lock()
	defer workerUserMu.Unlock()
	if _, err := user.Lookup(WorkerUser); err == nil {
		return WorkerUser + " " + WorkerUser, nil
	}
	out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
		"--shell", "/usr/sbin/nologin", WorkerUser).CombinedOutput()
	if _, lerr := user.Lookup(WorkerUser); lerr == nil {
		log.Info("created the system user nginx workers run as", "user", WorkerUser)
		return WorkerUser + " " + WorkerUser, nil
	}
	if err == nil {
		err = errors.New("it succeeded, yet the user cannot be looked up")
	}
	return "", fmt.Errorf("nginx workers run as the system user %q, which does not exist and could not be created (useradd: %w: %s); create it (useradd --system --user-group %s) or set web.nginx.user",
		WorkerUser, err, strings.TrimSpace(string(out)), WorkerUser)
}
