package sources

import (
	"strings"
	"testing"

	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// TestLiveReload: a reload swaps the sources' credentials, and refuses
// (changing nothing) a source added, removed or moved.
func TestLiveReload(t *testing.T) {
	pbx := config.Source{Name: "pbx", Type: "generic", Tenant: "contoso.example", Token: "old-token"}
	live, err := NewLive([]config.Source{pbx}, config.HTTP{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	token := func() string { return live.Set().Sources()[0].Token }

	renewed := pbx
	renewed.Token = "new-token"
	if n, err := live.Reload([]config.Source{renewed}); err != nil || n != 1 {
		t.Fatalf("Reload with a new token = %d, %v; want 1, nil", n, err)
	}
	if got := token(); got != "new-token" {
		t.Errorf("served token %q after the reload, want new-token", got)
	}

	moved := renewed
	moved.Tenant = "fabrikam.example"
	moved.Token = "third-token"
	added := config.Source{Name: "zoom", Type: "generic", Tenant: "contoso.example", Token: "t"}
	for name, srcs := range map[string][]config.Source{
		"moved":   {moved},
		"added":   {renewed, added},
		"removed": {},
	} {
		if _, err := live.Reload(srcs); err == nil || !strings.Contains(err.Error(), "restart the bridge") {
			t.Errorf("%s: Reload = %v, want it refused with a restart", name, err)
		}
		if got := token(); got != "new-token" {
			t.Errorf("%s: served token %q after a refused reload, want new-token", name, got)
		}
	}
	if d := live.Describe(); len(d) != 1 || d[0].Tenant != "contoso.example" {
		t.Errorf("Describe = %+v, want the last loaded pbx in contoso.example", d)
	}
}
