package main

import (
	"bytes"
	"strings"
	"testing"
)

// The binary's root command has the node's commands beside the client
// commands, and says which version it is.
func TestRootCommand(t *testing.T) {
	var out bytes.Buffer
	root := newRootCmd(&out, &out)
	for _, name := range []string{"node", "version", "site", "state", "app", "deploy", "rollback", "cert", "status", "cluster"} {
		if c, _, err := root.Find([]string{name}); err != nil || c.Name() != name {
			t.Errorf("command %q: %v", name, err)
		}
	}
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil || !strings.HasPrefix(out.String(), "sitefleet dev") {
		t.Fatalf("version: %q, %v", out.String(), err)
	}
}
