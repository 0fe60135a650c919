// Package archtest pins the direction of imports that docs/architecture.md
// describes, so that a change which breaks it fails here and not in review.
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sitefleet/sitefleet/"

// allowed lists, per package, the packages of ours it may import (besides
// the internal helpers ctxutil and fsutil). A package not listed may
// import anything of ours.
var allowed = map[string][]string{
	"model":           {},
	"state":           {"model"},
	"cluster":         {"state"},
	"deploy":          {"state"},
	"deploy/manifest": {},
	"webserver":       {},
	"traffic":         {},
	"protect":         {},
	"hooks":           {"cluster", "tls", "state", "model"},
	"tls":             {"cluster", "state"},
	"node":            {"webserver", "tls", "deploy/manifest", "protect", "state"},
	"api/client":      {"model"},
	"api":             {"api/client", "deploy", "tls", "state", "model"},
}

// etcdUsers are the only packages whose code imports the etcd client.
var etcdUsers = []string{"state", "cluster", "internal/etcdtest", "internal/tools/etcdmember"}

type pkg struct {
	ImportPath string
	Imports    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", module+"...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < len(allowed) {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	return pkgs
}

func TestImportDirection(t *testing.T) {
	for _, p := range listPackages(t) {
		name := strings.TrimPrefix(p.ImportPath, module)
		ok, listed := allowed[name]
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "go.etcd.io/") && !slices.Contains(etcdUsers, name) {
				t.Errorf("%s imports %s: only %v use the etcd client", name, imp, etcdUsers)
			}
			dep, ours := strings.CutPrefix(imp, module)
			if !ours || !listed || dep == "internal/ctxutil" || dep == "internal/fsutil" {
				continue
			}
			if !slices.Contains(ok, dep) {
				t.Errorf("%s imports %s; it may import only %v", name, dep, ok)
			}
		}
	}
}
