package tls

import (
	"slices"
	"strings"
	"testing"
)

func TestIntermediateProfile(t *testing.T) {
	if got, want := len(strings.Split(IntermediateCiphers, ":")), 9; got != want {
		t.Errorf("%d ciphers, want %d", got, want)
	}
	p := IntermediateProtocols()
	if want := []string{"TLSv1.2", "TLSv1.3"}; !slices.Equal(p, want) {
		t.Errorf("IntermediateProtocols = %v, want %v", p, want)
	}
	p[0] = "SSLv3"
	if IntermediateProtocols()[0] != "TLSv1.2" {
		t.Error("IntermediateProtocols shares its slice")
	}
}
