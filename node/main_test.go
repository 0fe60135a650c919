package node

import (
	"os"
	"testing"
)

// TestMain removes the generative tests' shared fixture, which outlives
// any one test (and fuzz input) on purpose.
func TestMain(m *testing.M) {
	code := m.Run()
	if genFix != nil {
		os.RemoveAll(genFix.dir)
	}
	os.Exit(code)
}
