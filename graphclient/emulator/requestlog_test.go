package emulator

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestRequestCountsOutliveTheLog: the request log keeps the last 10,000
// requests, the counts keep every one, by route and status; a reset
// clears both.
func TestRequestCountsOutliveTheLog(t *testing.T) {
	cfg := testConfig()
	cfg.Throttle = Throttle{Limit: 1 << 30, Window: time.Hour}
	em, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	token := signToken(em.signKey, claims{Audience: "https://graph.microsoft.com", AppID: appID, IDType: "app", Roles: []string{"Presence.ReadWrite.All"}, TenantID: tenantID}, time.Now())
	user := cfg.Tenants[0].Users[0].ID
	set := `{"sessionId":"` + appID + `","availability":"Busy","activity":"InACall","expirationDuration":"PT15M"}`
	send := func(method, path, body string) int {
		req := httptest.NewRequest(method, path, bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		em.ServeHTTP(rec, req)
		return rec.Code
	}
	const sets = maxRequestLog + 10
	for range sets {
		if status := send(http.MethodPost, "/v1.0/users/"+user+"/presence/setPresence", set); status != http.StatusOK {
			t.Fatalf("setPresence: %d", status)
		}
	}
	send(http.MethodPost, "/v1.0/users/"+user+"/presence/clearPresence", `{"sessionId":"`+appID+`"}`)
	send(http.MethodPost, "/v1.0/nowhere", "")
	send(http.MethodGet, "/_emulator/presences", "") // admin API: neither logged nor counted

	if n := len(em.Requests()); n > maxRequestLog {
		t.Fatalf("the log holds %d requests", n)
	}
	counts := em.RequestCounts()
	want := map[RouteStatus]uint64{
		{"POST /v1.0/users/{id}/presence/setPresence", http.StatusOK}:   sets,
		{"POST /v1.0/users/{id}/presence/clearPresence", http.StatusOK}: 1,
		{"/", http.StatusBadRequest}:                                    1,
	}
	if len(counts) != len(want) {
		t.Fatalf("counts %v, want %v", counts, want)
	}
	for k, n := range want {
		if counts[k] != n {
			t.Fatalf("counts %v, want %v", counts, want)
		}
	}
	em.Reset()
	if counts := em.RequestCounts(); len(counts) != 0 {
		t.Fatalf("after a reset: %v", counts)
	}
}
