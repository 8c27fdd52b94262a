package main

import (
	"strings"
	"testing"
)

// config check refuses an owner_role that is one of Timebox's own roles on the server (the
// admin of its URL, the bookkeeping, connect and quarantine roles) or a predefined role, and
// accepts a role of the user's own.
func TestConfigOwnerRole(t *testing.T) {
	cfgSetenv(t)
	withOwner := func(role string) string {
		return strings.Replace(cfgValidYAML, "owners: [shop-owners]", "owners: [shop-owners]\n    owner_role: "+role, 1)
	}
	for _, role := range []string{"timebox", "timebox_managed", "timebox_quarantine", "timebox_connect_0123456789abcdef", "pg_read_all_data"} {
		_, stderr, code := cfgRun(t, "config", "check", cfgWrite(t, withOwner(role)))
		if code != 3 || !strings.Contains(stderr, "databases[0].owner_role") || !strings.Contains(stderr, role) {
			t.Errorf("owner_role %s: exit %d, stderr %q; want it refused, naming the field", role, code, stderr)
		}
	}
	path := cfgWrite(t, withOwner("shop_owner"))
	if _, stderr, code := cfgRun(t, "config", "check", path); code != 0 {
		t.Errorf("owner_role shop_owner: exit %d, stderr %q", code, stderr)
	}
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := ownerRoles(&c.Catalog, "pg1"); len(got) != 1 || got["shop"] != "shop_owner" {
		t.Errorf("ownerRoles = %v, want shop → shop_owner", got)
	}
}
