package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientLinksNoStateStore pins what programs that use the client get:
// the API's wire types without etcd, gRPC or the state store.
func TestClientLinksNoStateStore(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"go.etcd.io/", "google.golang.org/grpc", "github.com/sitefleet/sitefleet/state"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("api/client depends on %s", dep)
			}
		}
	}
}
