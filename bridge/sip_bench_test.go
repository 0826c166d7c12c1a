package bridge_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/internal/bridgetest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs/sip/siptest"
)

// sipBenchExtension is the extension of the i-th watched person.
func sipBenchExtension(i int) string { return fmt.Sprintf("%d", 10000+i) }

// sipNotifies follows the presence NOTIFYs a watcher gets: for each
// extension with a change under way, how long after the change the
// NOTIFY showing it came.
type sipNotifies struct {
	mu        sync.Mutex
	seen      map[string]bool      // extensions notified with a body
	pending   map[string]time.Time // extension → when its change was made
	want      map[string]bool      // extension → on the phone or not
	latencies []time.Duration
}

func (s *sipNotifies) take(n siptest.Notify) {
	if n.Event != "presence" || n.Body == "" {
		return
	}
	onThePhone := strings.Contains(n.Body, "on-the-phone")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[n.Entity] = true
	made, ok := s.pending[n.Entity]
	if !ok || onThePhone != s.want[n.Entity] {
		return
	}
	delete(s.pending, n.Entity)
	s.latencies = append(s.latencies, n.At.Sub(made))
}

// BenchmarkSIPChangeToNotify: 1,000 people watched at `interval: 2s`,
// each mapped to an extension of a sip output on a real Kamailio, and a
// desk phone subscribed to every extension's presence. After everyone's
// first publication, 100 Teams changes per second are made in the
// emulator (SetTeamsSession, each a different person: a call, and later
// its end) for watchChangeSeconds. It reports the time from a change in
// the emulator to the NOTIFY at the phone that shows it (p50, p99, max).
// It fails if a change never arrives.
func BenchmarkSIPChangeToNotify(b *testing.B) {
	const people, perSecond = 1_000, 100
	seconds := watchChangeSeconds
	k := siptest.StartKamailio(b)
	var users strings.Builder
	var mapped strings.Builder
	for i := range people {
		users.WriteString(bridgetest.User(watchUser(i), fmt.Sprintf("w%d@contoso.example", i)))
		fmt.Fprintf(&mapped, "        w%d@contoso.example: %q\n", i, sipBenchExtension(i))
	}
	yaml := bridgetest.Header + fmt.Sprintf("nats: {embedded: true, store_dir: %q}\n", b.TempDir()) +
		"graph:\n" + bridgetest.Tenants() + bridgetest.Emulator(users.String()) + fmt.Sprintf(`sources:
  - {name: demo, type: generic, token: demo-token}
watch: {enabled: true, interval: 2s, users: all}
outputs:
  - name: phones
    type: sip
    skip_sources: []
    sip:
      server: %s
      domain: %s
      user: %s
      password: %s
      expires: 10m
      extensions:
`, k.Addr(), siptest.Domain, siptest.BridgeUser, siptest.BridgePassword) + mapped.String()
	br := startBridge(b, yaml)
	em := br.Emulator()

	got := &sipNotifies{seen: map[string]bool{}}
	w := siptest.NewWatcher(b, "1003", k.Addr())
	w.OnNotify = got.take
	for i := range people {
		w.Subscribe(sipBenchExtension(i), "presence")
	}
	testpoll.Within(b, 5*time.Minute, "everyone's first publication at the phone", func() bool {
		got.mu.Lock()
		defer got.mu.Unlock()
		return len(got.seen) >= people
	})
	got.mu.Lock()
	got.pending, got.want = map[string]time.Time{}, map[string]bool{}
	got.mu.Unlock()

	b.ResetTimer()
	changes := 0
	for run := range b.N {
		changes += paceTeamsChanges(b, em, run*seconds*perSecond, seconds, perSecond, people, func(who int, call bool) {
			got.mu.Lock()
			got.pending[sipBenchExtension(who)] = time.Now()
			got.want[sipBenchExtension(who)] = call
			got.mu.Unlock()
		})
		testpoll.Within(b, 60*time.Second, "every change at the phone", func() bool {
			got.mu.Lock()
			defer got.mu.Unlock()
			return len(got.pending) == 0
		})
	}
	b.StopTimer()

	got.mu.Lock()
	lat := slices.Clone(got.latencies)
	got.mu.Unlock()
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 0.50), "p50-ms")
	b.ReportMetric(percentile(lat, 0.99), "p99-ms")
	b.ReportMetric(percentile(lat, 1), "max-ms")
	b.ReportMetric(float64(changes), "changes")
	for _, s := range br.WatchStatus() {
		b.ReportMetric(s.LastCycleSeconds, "last-cycle-s")
		b.Logf("watch %s: people %d, planned cycle %.2fs, last cycle %.2fs, stretched %v, reads %v, changes %v",
			s.Tenant, s.People, s.CycleSeconds, s.LastCycleSeconds, s.Stretched, s.Reads, s.Changes)
	}
	b.Logf("sip publications: 2xx %v, 4xx %v, 5xx %v, none %v",
		metric(b, br, `presence_bridge_sip_publications_total{class="2xx",output="phones"}`), metric(b, br, `presence_bridge_sip_publications_total{class="4xx",output="phones"}`),
		metric(b, br, `presence_bridge_sip_publications_total{class="5xx",output="phones"}`), metric(b, br, `presence_bridge_sip_publications_total{class="none",output="phones"}`))
	b.Logf("changes %d, notified %d", changes, len(lat))
}
