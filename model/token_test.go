package model

import (
	"testing"
	"time"
)

func TestRolePermissions(t *testing.T) {
	want := map[Role][]Permission{
		RoleRead:   {PermRead},
		RoleDeploy: {PermRead, PermDeploy},
		RoleAdmin:  {PermRead, PermDeploy, PermAdmin, PermPeer},
		RoleNode:   {PermPeer},
		"root":     nil,
	}
	for role, allowed := range want {
		for _, p := range []Permission{PermRead, PermDeploy, PermAdmin, PermPeer} {
			should := false
			for _, a := range allowed {
				should = should || a == p
			}
			if role.Allows(p) != should {
				t.Errorf("%s allows %s: %v, want %v", role, p, role.Allows(p), should)
			}
		}
	}
}

func TestTokenScopeAndExpiry(t *testing.T) {
	tok := Token{Sites: []string{"*.example.com", "blog.test"}}
	for domain, want := range map[string]bool{"a.example.com": true, "A.B.Example.com": true, "example.com": false, "blog.test": true, "blog.test.evil": false} {
		if tok.AllowsSite(domain) != want {
			t.Errorf("%s: %v", domain, !want)
		}
	}
	if !(Token{}).AllowsSite("any.test") {
		t.Error("a token without patterns covers every site")
	}
	past := time.Now().Add(-time.Second)
	if !(Token{ExpiresAt: &past}).Expired(time.Now()) || (Token{}).Expired(time.Now()) {
		t.Error("expiry")
	}
	if (Token{}).RoleOf() != RoleAdmin {
		t.Error("a record without a role is admin")
	}
	for _, p := range []string{"", "a/b", "A.test", "[a-", "a b", "*.test\n"} {
		if ValidateSitePattern(p) == nil {
			t.Errorf("pattern %q accepted", p)
		}
	}
}
