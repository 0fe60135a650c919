package webserver

import (
	"slices"
	"strings"
	"testing"
)

func TestIntermediateProfile(t *testing.T) {
	if got, want := len(strings.Split(intermediateCiphers, ":")), 9; got != want {
		t.Errorf("%d ciphers, want %d", got, want)
	}
	p := intermediateProtocols()
	if want := []string{"TLSv1.2", "TLSv1.3"}; !slices.Equal(p, want) {
		t.Errorf("intermediateProtocols = %v, want %v", p, want)
	}
	p[0] = "SSLv3"
	if intermediateProtocols()[0] != "TLSv1.2" {
		t.Error("intermediateProtocols shares its slice")
	}
}
