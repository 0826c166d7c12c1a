package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// TestScaleConfigs: the bridge of the scale run reaches the emulator's
// own process with its budgets raised and runs no emulator itself; the
// emulator's file names every person and throttles no lower than the
// bridge's budget.
func TestScaleConfigs(t *testing.T) {
	dir := t.TempDir()
	bridgeCfg, emCfg, err := scaleConfigs("bridge.yaml", "http://127.0.0.1:18081", filepath.Join(dir, "nats"), 2000)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(bridgeCfg, dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, bridgeCfg)
	}
	tenant := cfg.Graph.Tenants[0]
	if cfg.Graph.Emulator.Enabled || tenant.GraphURL != "http://127.0.0.1:18081/v1.0" || tenant.LoginURL != "http://127.0.0.1:18081" ||
		tenant.Budget != 100_000 || tenant.LookupBudget != 2000 {
		t.Errorf("emulator in the bridge %v, graph_url %q, login_url %q, budget %d, lookup_budget %d",
			cfg.Graph.Emulator.Enabled, tenant.GraphURL, tenant.LoginURL, tenant.Budget, tenant.LookupBudget)
	}
	em, err := config.ParseEmulator(emCfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, emCfg)
	}
	if em.Listen != "127.0.0.1:18081" || len(em.Tenants[0].Users) != 2000 || em.Throttle.Limit < tenant.Budget {
		t.Errorf("emulator listen %q, %d users, throttle %d", em.Listen, len(em.Tenants[0].Users), em.Throttle.Limit)
	}
}

// TestPostOneEventEach: with total and state set, a run posts exactly
// one event per person, each naming the person's call of the run, so that
// a second run can end the calls the first started.
func TestPostOneEventEach(t *testing.T) {
	g := newGenerator(postOptions{source: "bench", domain: "x.example", users: 3, state: "ended", calls: "s1"}, "r1")
	ev := string(g.event(nil, 2))
	if !strings.Contains(ev, `"callId":"s1-2"`) || !strings.Contains(ev, `"state":"ended"`) || !strings.Contains(ev, "user0002@x.example") {
		t.Errorf("event %s", ev)
	}

	const token = "s3cret-token"
	_, url := startBare(t, token)
	r, err := post(context.Background(), postOptions{url: url, token: token, source: "bench", domain: "contoso.example",
		duration: time.Minute, conns: 4, users: 25, applyWait: time.Minute, total: 25, state: "active", calls: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.accepted != 25 || r.rejected+r.errors != 0 {
		t.Errorf("%d accepted, %d rejected, %d errors (%s); want 25 accepted", r.accepted, r.rejected, r.errors, r.firstErr)
	}
}

// TestProcUsage reads this process's own RSS, peak RSS and CPU time.
func TestProcUsage(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	rss, _, err := procUsage(os.Getpid())
	if err != nil || rss == 0 {
		t.Fatalf("rss %d, err %v", rss, err)
	}
	peak, err := procStatus(os.Getpid(), "VmHWM:")
	if err != nil || peak == 0 {
		t.Fatalf("peak rss %d, err %v", peak, err)
	}
}
