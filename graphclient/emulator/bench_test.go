package emulator

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// benchEmulator is the demo tenant with 100 users, no throttling to speak
// of, and a token of the demo app.
func benchEmulator(b *testing.B) (*Emulator, string, []string) {
	cfg := testConfig()
	cfg.Throttle = Throttle{Limit: 1 << 30, Window: time.Hour}
	var ids []string
	for i := range 100 {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		ids = append(ids, id)
		cfg.Tenants[0].Users = append(cfg.Tenants[0].Users, User{ID: id, UserPrincipalName: fmt.Sprintf("u%d@contoso.example", i)})
	}
	em, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	token := signToken(em.signKey, claims{Audience: "https://graph.microsoft.com", AppID: appID, IDType: "app", Roles: []string{"Presence.ReadWrite.All"}, TenantID: tenantID}, time.Now())
	return em, token, ids
}

// BenchmarkSetPresence measures the setPresence requests per second the
// emulator serves over real HTTP on loopback, with parallel clients
// (keep-alive connections) spread over 100 users.
func BenchmarkSetPresence(b *testing.B) {
	em, token, ids := benchEmulator(b)
	srv := httptest.NewServer(em)
	defer srv.Close()
	body := []byte(`{"sessionId":"` + appID + `","availability":"Busy","activity":"InACall","expirationDuration":"PT15M"}`)
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			req, _ := http.NewRequest("POST", srv.URL+"/v1.0/users/"+ids[i%len(ids)]+"/presence/setPresence", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkSetPresenceInProcess is the same without the network: the
// handler's own cost.
func BenchmarkSetPresenceInProcess(b *testing.B) {
	em, token, ids := benchEmulator(b)
	body := []byte(`{"sessionId":"` + appID + `","availability":"Busy","activity":"InACall","expirationDuration":"PT15M"}`)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			req := httptest.NewRequest("POST", "/v1.0/users/"+ids[i%len(ids)]+"/presence/setPresence", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			em.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Errorf("status %d", rec.Code)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
