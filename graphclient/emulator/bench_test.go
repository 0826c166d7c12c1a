package emulator

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
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

// BenchmarkSetPresence measures the emulator over real HTTP on loopback:
// one op is one setPresence request with a bearer token, answered 200.
// Exactly two clients (goroutines, each with its own keep-alive
// connection) send in turn over 100 users; the figure includes both
// ends' HTTP and the emulator's token check, aggregation and request log.
func BenchmarkSetPresence(b *testing.B) {
	const clients = 2
	em, token, ids := benchEmulator(b)
	srv := httptest.NewServer(em)
	defer srv.Close()
	body := []byte(`{"sessionId":"` + appID + `","availability":"Busy","activity":"InACall","expirationDuration":"PT15M"}`)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			transport := &http.Transport{}
			defer transport.CloseIdleConnections()
			client := &http.Client{Transport: transport}
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				req, _ := http.NewRequest("POST", srv.URL+"/v1.0/users/"+ids[i%int64(len(ids))]+"/presence/setPresence", bytes.NewReader(body))
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
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkSetPresenceInProcess is BenchmarkSetPresence without the
// network: one op is one setPresence through ServeHTTP with a recorder,
// from GOMAXPROCS goroutines (two on a 2-core machine); the handler's own
// cost.
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
