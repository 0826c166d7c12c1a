package bridge_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters/generic"
	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// TestReloadDirectoryAndCredentials reloads a running bridge with a new
// directory entry and a new token for one source while another source
// keeps sending: every event of that source is taken, the old token stops
// working, the new one and the new entry work, and a reload that moves
// sources changes nothing.
func TestReloadDirectoryAndCredentials(t *testing.T) {
	yaml := testConfig(t)
	b := startBridge(t, yaml)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			body := strings.Replace(callEvent("o"+time.Now().Format("150405.000000000"), "client:Alice", "c-other", "ringing", time.Now()), `"source":"demo"`, `"source":"other"`, 1)
			if r := post(t, b, "/v1/events", "other-token", "application/json", body); r.status != http.StatusAccepted {
				t.Errorf("event %d during reload: %d %v", i, r.status, r.body)
				return
			}
		}
	}()

	reloaded := strings.Replace(yaml, "token: demo-token}", "token: demo-token-2}", 1)
	reloaded = strings.Replace(reloaded, `"ext:1001": alice@contoso.example`, `"ext:1001": alice@contoso.example`+"\n  \"ext:1002\": bob@contoso.example", 1)
	cfg, err := config.Parse([]byte(reloaded), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for range 20 { // reload repeatedly while the other source sends
		if err := b.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()

	if r := post(t, b, "/v1/events", "demo-token", "application/json", callEvent("old", "ext:1002", "c1", "active", time.Now())); r.status != http.StatusUnauthorized {
		t.Fatalf("old token after reload: %d %v", r.status, r.body)
	}
	if r := post(t, b, "/v1/events", "demo-token-2", "application/json", callEvent("new", "ext:1002", "c1", "active", time.Now())); r.status != http.StatusAccepted {
		t.Fatalf("new token after reload: %d %v", r.status, r.body)
	}
	waitPresence(t, b, bobID, "Busy/InACall", patience)

	moved, err := config.Parse([]byte(strings.Replace(reloaded, "name: other,", "name: other2,", 1)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(moved); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("reload with a renamed source: %v", err)
	}
	if r := post(t, b, "/v1/events", "demo-token-2", "application/json", callEvent("new2", "ext:1002", "c1", "ended", time.Now())); r.status != http.StatusAccepted {
		t.Fatalf("refused reload changed the sources: %d %v", r.status, r.body)
	}
}

// TestAdminSources lists the configured sources without their secrets.
func TestAdminSources(t *testing.T) {
	b := startBridge(t, testConfig(t))
	req, _ := http.NewRequest(http.MethodGet, "http://"+b.Addr()+"/v1/admin/sources", nil)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	want := `{"sources":[{"name":"demo","type":"generic","tenant":"contoso.example","path":"/v1/hooks/demo","auth":["token"]},{"name":"other","type":"generic","tenant":"contoso.example","path":"/v1/hooks/other","auth":["token"]}]}`
	if resp.StatusCode != http.StatusOK || string(body) != want {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "demo-token") {
		t.Fatal("the sources endpoint shows a token")
	}
}

// TestReloadWebhookSecret rotates a webhook source's signing secret: the
// source's own path checks the new secret at once.
func TestReloadWebhookSecret(t *testing.T) {
	const newSecret = "whsec_c2Vjb25kLXNlY3JldC1mb3ItdGhlLXRlc3Q="
	yaml := strings.Replace(testConfig(t), "admin: {token: admin-token}", "  - {name: signed, type: generic, secret: "+whsec+"}\nadmin: {token: admin-token}", 1)
	b := startBridge(t, yaml)
	send := func(secret, id string) int {
		body := []byte(`{"id":"` + id + `","source":"signed","type":"call","user":"ext:1001","occurredAt":"` + time.Now().UTC().Format(time.RFC3339) + `","callId":"s","state":"active"}`)
		key, err := generic.DecodeSecret(secret)
		if err != nil {
			t.Fatal(err)
		}
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req, _ := http.NewRequest(http.MethodPost, "http://"+b.Addr()+"/v1/hooks/signed", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", ts)
		req.Header.Set("webhook-signature", generic.Sign(key, id, ts, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(whsec, "m1"); code != http.StatusAccepted {
		t.Fatalf("before reload: %d", code)
	}
	cfg, err := config.Parse([]byte(strings.Replace(yaml, whsec, newSecret, 1)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if code := send(whsec, "m2"); code == http.StatusAccepted {
		t.Fatal("the old secret still works after reload")
	}
	if code := send(newSecret, "m3"); code != http.StatusAccepted {
		t.Fatalf("the new secret after reload: %d", code)
	}
}
