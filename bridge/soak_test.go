//go:build soak

package bridge_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

var (
	soakDuration = flag.Duration("soak.duration", 2*time.Minute, "how long the soak test sends events")
	soakUsers    = flag.Int("soak.users", 300, "how many users the soak test's events name")
)

// TestSoakChaos runs two bridges on one NATS server against the emulator
// for soak.duration while Graph fails at random, slows down, throttles and
// goes away, and the bridges restart in turn (every other time by losing
// NATS, as in a crash). Events arrive in bursts,
// with duplicates and stale stragglers. Every event must be accepted
// (clients retry as vendors do), nothing may be dead-lettered, and once
// the faults stop every user's presence must be what their last event
// says.
func TestSoakChaos(t *testing.T) {
	natsURL, em := soakParts(t, *soakUsers)
	cfg := clusterConfig(natsURL, em.Addr())
	bridges := []*soakBridge{{t: t, cfg: cfg}, {t: t, cfg: cfg}}
	for _, b := range bridges {
		b.start()
	}
	defer func() {
		for _, b := range bridges {
			b.stop(false)
		}
	}()

	rng := rand.New(rand.NewPCG(1, 2))
	type userState struct {
		step      int
		callState string
		last      string // the newest event, for duplicates
		at        time.Time
	}
	users := make([]userState, *soakUsers)
	states := []string{"ringing", "active", "held", "active", "ended"}
	sent, duplicates, stale, retries := 0, 0, 0, 0

	post := func(body string) {
		for attempt := 0; ; attempt++ {
			b := bridges[(sent+attempt)%len(bridges)]
			if status := b.post(body); status == http.StatusAccepted {
				return
			}
			retries++
			if attempt > 600 {
				t.Fatalf("an event was not accepted after %d attempts", attempt)
			}
			// Real time must pass: a sender's pause before it tries
			// the next bridge.
			time.Sleep(50 * time.Millisecond)
		}
	}

	start := time.Now()
	faultEvery, restartEvery := 7*time.Second, 20*time.Second
	nextFault, nextRestart, restarted := start.Add(faultEvery), start.Add(restartEvery), 0
	var restarting sync.WaitGroup
	for time.Since(start) < *soakDuration {
		if now := time.Now(); now.After(nextFault) {
			nextFault = now.Add(faultEvery)
			em.ClearFaults()
			switch rng.IntN(4) {
			case 0:
				em.FailRate(0.3, http.StatusServiceUnavailable, rng.Uint64())
			case 1:
				em.SetLatency(time.Duration(rng.IntN(200)) * time.Millisecond)
			case 2:
				em.ForceThrottle(5, time.Duration(500+rng.IntN(2000))*time.Millisecond)
			case 3:
				em.Outage(3 * time.Second)
			}
		}
		if now := time.Now(); now.After(nextRestart) {
			nextRestart = now.Add(restartEvery)
			// Restart one bridge while events keep arriving.
			b := bridges[restarted%len(bridges)]
			restarting.Add(1)
			// Every other restart is a crash: the bridge loses NATS
			// without acking, renewing its lease or handing it over.
			crash := restarted%2 == 1
			go func() {
				defer restarting.Done()
				b.stop(crash)
				// Real time must pass: the bridge stays down a second
				// while the others take its load.
				time.Sleep(time.Second)
				b.start()
			}()
			restarted++
		}
		for range 10 {
			i := rng.IntN(len(users))
			u := &users[i]
			userID := soakUser(i)
			switch r := rng.IntN(20); {
			case r == 0 && u.last != "":
				post(u.last) // a duplicate delivery
				duplicates++
				continue
			case r == 1 && !u.at.IsZero():
				// A straggler: older than what the user's state holds.
				post(fmt.Sprintf(`{"id":"stale-%d","source":"demo","type":"call","user":%q,"occurredAt":%q,"callId":"c%d-%d","state":"active"}`,
					sent, userID, u.at.Add(-time.Minute).UTC().Format(time.RFC3339Nano), i, (u.step-1)/len(states)))
				stale++
				continue
			}
			// Each user goes through calls: ringing, active, held,
			// active, ended, then the next call.
			u.callState = states[u.step%len(states)]
			u.at = time.Now()
			u.last = fmt.Sprintf(`{"id":"e-%d","source":"demo","type":"call","user":%q,"occurredAt":%q,"callId":"c%d-%d","state":%q}`,
				sent, userID, u.at.UTC().Format(time.RFC3339Nano), i, u.step/len(states), u.callState)
			u.step++
			post(u.last)
			sent++
		}
		// Real time must pass: the soak's pacing, ten events every 200 ms.
		time.Sleep(200 * time.Millisecond)
	}
	restarting.Wait()
	em.ClearFaults()
	sendDone := time.Now()

	want := func(i int) string {
		switch users[i].callState {
		case "", "ended":
			return "Offline/Offline"
		case "ringing":
			return "Offline/Offline" // ringing maps to nothing by default
		}
		return "Busy/InACall"
	}
	wants := make(map[string]string, len(users))
	for i := range users {
		wants[soakUser(i)] = want(i)
	}
	testpoll.WithinOK(t, 2*time.Minute, "every user to converge", presencesAre(em, wants))
	letters, err := bridges[0].b.Queue().ListDeadLetters(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) > 0 {
		t.Fatalf("%d dead letters, e.g. %s: %s", len(letters), letters[0].Reason, letters[0].GraphError)
	}
	// The emulator's counts, not its request log: the log keeps only the
	// last 10,000 requests.
	var calls, throttled uint64
	for k, n := range em.RequestCounts() {
		if strings.HasSuffix(k.Route, "/setPresence") || strings.HasSuffix(k.Route, "/clearPresence") {
			calls += n
			if k.Status == http.StatusTooManyRequests {
				throttled += n
			}
		}
	}
	t.Logf("%s: %d events, %d duplicates, %d stragglers, %d client retries, %d restarts; %d Graph writes (%d answered 429); converged %s after the faults stopped",
		*soakDuration, sent, duplicates, stale, retries, restarted, calls, throttled, time.Since(sendDone).Round(time.Millisecond))
}

func soakUser(i int) string { return fmt.Sprintf("50a50000-0000-0000-0000-%012d", i) }

// soakParts starts a NATS server and an emulator with n more users.
func soakParts(t *testing.T, n int) (string, *emulator.Emulator) {
	users := make([]emulator.User, n)
	for i := range users {
		users[i] = emulator.User{ID: soakUser(i), UserPrincipalName: fmt.Sprintf("soak%d@contoso.example", i)}
	}
	return sharedParts(t, users...)
}

// soakBridge is a bridge the soak test stops and starts again while
// events are posted to it.
type soakBridge struct {
	t   *testing.T
	cfg string
	mu  sync.Mutex
	b   *bridge.Bridge
}

func (s *soakBridge) current() *bridge.Bridge {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b
}

func (s *soakBridge) start() {
	cfg, err := config.Parse([]byte(s.cfg), s.t.TempDir())
	if err != nil {
		s.t.Fatal(err)
	}
	b, err := bridge.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		s.t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		s.t.Error(err)
		return
	}
	s.mu.Lock()
	s.b = b
	s.mu.Unlock()
}

// stop stops the bridge; crash cuts its NATS connection first.
func (s *soakBridge) stop(crash bool) {
	s.mu.Lock()
	b := s.b
	s.b = nil
	s.mu.Unlock()
	if b == nil {
		return
	}
	if crash {
		b.Queue().Conn().Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := b.Stop(ctx); err != nil && !crash {
		s.t.Errorf("stop: %v", err)
	}
}

// post sends one event and returns the status, 0 when the bridge is down.
func (s *soakBridge) post(body string) int {
	b := s.current()
	if b == nil {
		return 0
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+b.Addr()+"/v1/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer demo-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
