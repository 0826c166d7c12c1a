package bridge_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/internal/logbuf"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/internal/bridgetest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// startBridgeWithLogs runs a bridge from cfg that logs at debug level as
// JSON into the returned buffer, and stops it when the test ends.
func startBridgeWithLogs(t *testing.T, cfg *config.Config) (*bridge.Bridge, *logbuf.Buffer) {
	t.Helper()
	logs := &logbuf.Buffer{}
	b := bridgetest.Run(t, cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return b, logs
}

// TestSecretsStayOutOfLogsAndMetrics runs the bridge with a wrong Graph
// secret at debug level, drives errors, and checks that no secret shows up
// in the logs, the dead letters, or the metrics.
func TestSecretsStayOutOfLogsAndMetrics(t *testing.T) {
	yaml := strings.Replace(testConfig(t), "client_secret: demo-secret\n  timeout", "client_secret: wrong-graph-secret\n  timeout", 1)
	cfg, err := config.Parse([]byte(yaml), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, logs := startBridgeWithLogs(t, cfg)

	postEvent(t, b, callEvent("s1", "alice@contoso.example", "c1", "active", time.Now()))
	post(t, b, "/v1/events", "not-the-token", "application/json", "{}")
	// Rejected webhooks are logged and counted; what they carried is not.
	post(t, b, "/v1/hooks/demo", "guessed-token", "application/json", `{"password":"body-secret"}`)
	post(t, b, "/v1/events", "demo-token", "application/json", `{"id":"body-secret"`)
	post(t, b, "/v1/admin/deadletters/1/replay", "wrong-admin", "", "")
	testpoll.Until(t, "the token failure in the logs", func() bool { return strings.Contains(logs.String(), "invalid_client") })
	if !strings.Contains(logs.String(), "AADSTS7000215") {
		t.Fatalf("the token failure should be logged with its AADSTS code:\n%s", logs.String())
	}
	resp, err := http.Get("http://" + b.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	letters, _ := b.Queue().ListDeadLetters(context.Background(), 0, 100)
	var dl bytes.Buffer
	for _, d := range letters {
		dl.WriteString(d.Reason + d.GraphError + string(d.Data))
	}
	// A wrong secret holds events back; it does not throw them away.
	if letters, _ := b.Queue().ListDeadLetters(context.Background(), 0, 10); len(letters) != 0 {
		t.Errorf("a wrong Graph secret dead-lettered %d events", len(letters))
	}
	if !strings.Contains(logs.String(), "webhook rejected") || !strings.Contains(string(metrics), "presence_bridge_webhook_rejections_total") {
		t.Fatalf("the rejected webhooks should be logged and counted")
	}
	for _, secret := range []string{"wrong-graph-secret", "demo-secret", "demo-token", "admin-token", "other-token", "emu.", "guessed-token", "body-secret", "not-the-token"} {
		for what, text := range map[string]string{"logs": logs.String(), "metrics": string(metrics), "dead letters": dl.String()} {
			if strings.Contains(text, secret) {
				t.Errorf("%q appears in the %s", secret, what)
			}
		}
	}
}
