package main

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/presence-bridge/presence-bridge/bridge/admin"
	"github.com/presence-bridge/presence-bridge/bridge/metrics"
)

// TestOutputsCommand: `outputs` lists the outputs of a bridge's admin
// API with their health, as a table or as JSON, and reports a wrong token.
func TestOutputsCommand(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	failedAt := time.Date(2026, 12, 3, 9, 29, 50, 0, time.UTC)
	admin.Register(r, admin.Deps{Token: "admin-s3cret", Outputs: func() []metrics.OutputStatus {
		return []metrics.OutputStatus{
			{Name: "bus", Type: "nats", Healthy: true, Published: map[string]uint64{"teams": 40, "bridge": 3}},
			{Name: "pbx-feed", Type: "nats", Failures: 12, Queued: 4, Lag: 95 * time.Second, LastError: "nats: no responders available for request", LastErrorAt: failedAt},
		}
	}})
	srv := httptest.NewServer(r)
	defer srv.Close()
	environ := map[string]string{"PRESENCE_BRIDGE_URL": srv.URL, "PRESENCE_BRIDGE_TOKEN": "admin-s3cret"}
	for _, tt := range []lineTest{
		{name: "table", args: []string{"outputs"}, out: []string{
			"NAME      TYPE  HEALTHY  PUBLISHED          SKIPPED  DROPPED  FAILURES  QUEUED  LAG SECONDS  LAST ERROR",
			"bus       nats  yes      bridge=3 teams=40",
			"pbx-feed  nats  no       -                  0        0        12        4       95           nats: no responders available for request  2026-12-03T09:29:50Z",
		}},
		{name: "json", args: []string{"outputs", "-o", "json"}, out: []string{`"name": "pbx-feed"`, `"healthy": false`, `"lagSeconds": 95`}},
		{name: "wrong token", args: []string{"outputs", "--token", "wr0ng"}, code: 1, errOut: []string{"401 unauthorized"}, missing: []string{"wr0ng"}},
		{name: "stray word", args: []string{"outputs", "bus"}, code: 2},
	} {
		tt.missing = append(tt.missing, "admin-s3cret")
		t.Run(tt.name, func(t *testing.T) { tt.check(t, environ) })
	}
}
