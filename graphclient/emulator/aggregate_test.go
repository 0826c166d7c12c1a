package emulator

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// appState is a state an application session can be in when the presence
// is read.
type appState struct {
	name     string
	pair     Pair          // what setPresence set
	lifetime time.Duration // its expirationDuration
	age      time.Duration // how long ago it was set
	shows    *Pair         // what it shows now; nil: it has expired
}

func pairOf(s string) Pair {
	a, b, _ := strings.Cut(s, "/")
	return Pair{a, b}
}

func ptr(p Pair) *Pair { return &p }

// TestAggregation checks Graph's aggregation over every combination of an
// application session's state, a Teams client session and a preferred
// presence: no live session is Offline/Offline whatever the preferred
// presence; a live preferred presence wins; otherwise DoNotDisturb > Busy >
// Available > Away (idle variants below their base, BeRightBack between
// Available and Away), the newer session on a tie.
func TestAggregation(t *testing.T) {
	hour := time.Hour
	apps := []appState{
		{name: "none"},
		{"Available fresh", pairOf("Available/Available"), hour, 2 * time.Minute, ptr(pairOf("Available/Available"))},
		{"Available after 6m", pairOf("Available/Available"), hour, 6 * time.Minute, ptr(pairOf("Available/AvailableInactive"))},
		{"Available after 11m", pairOf("Available/Available"), hour, 11 * time.Minute, ptr(pairOf("Away/Away"))},
		{"Busy InACall", pairOf("Busy/InACall"), hour, 2 * time.Minute, ptr(pairOf("Busy/InACall"))},
		{"Busy InAConferenceCall after 30m", pairOf("Busy/InAConferenceCall"), hour, 30 * time.Minute, ptr(pairOf("Busy/InAConferenceCall"))},
		{"Away", pairOf("Away/Away"), hour, 2 * time.Minute, ptr(pairOf("Away/Away"))},
		{"DoNotDisturb Presenting", pairOf("DoNotDisturb/Presenting"), hour, 2 * time.Minute, ptr(pairOf("DoNotDisturb/Presenting"))},
		{"Busy expired", pairOf("Busy/InACall"), 5 * time.Minute, 6 * time.Minute, nil},
	}
	teams := []string{"", "Available/Available", "AvailableIdle/Inactive", "Busy/InAMeeting", "BusyIdle/Inactive", "DoNotDisturb/DoNotDisturb", "BeRightBack/BeRightBack", "Away/Away"}
	preferred := []string{"", "Available/Available", "Busy/Busy", "DoNotDisturb/DoNotDisturb", "BeRightBack/BeRightBack", "Away/Away", "Offline/OffWork", "expired Busy/Busy"}
	// order is the precedence, highest first, written out independently of
	// the implementation's rank table.
	order := []string{"DoNotDisturb", "Busy", "BusyIdle", "Available", "AvailableIdle", "BeRightBack", "Away"}
	position := func(availability string) int {
		for i, a := range order {
			if a == availability {
				return i
			}
		}
		t.Fatalf("no precedence for %s", availability)
		return 0
	}
	cases := 0
	for _, app := range apps {
		for _, tm := range teams {
			for _, pref := range preferred {
				cases++
				name := fmt.Sprintf("app=%s|teams=%s|preferred=%s", app.name, tm, pref)
				t.Run(name, func(t *testing.T) {
					clock := NewFakeClock(t0)
					em, err := New(testConfig(), WithClock(clock))
					if err != nil {
						t.Fatal(err)
					}
					if pref != "" {
						lifetime := time.Duration(0)
						p := pref
						if rest, ok := strings.CutPrefix(pref, "expired "); ok {
							p, lifetime = rest, time.Minute
						}
						pp := pairOf(p)
						if err := em.SetPreferred(alice, pp.Availability, pp.Activity, lifetime); err != nil {
							t.Fatal(err)
						}
					}
					if app.shows != nil || app.lifetime > 0 {
						if err := em.SetSession(alice, Session{Kind: KindApp, AppID: appID, Availability: app.pair.Availability, Activity: app.pair.Activity, Lifetime: app.lifetime}); err != nil {
							t.Fatal(err)
						}
						clock.Advance(app.age)
					} else {
						clock.Advance(2 * time.Minute) // so that an "expired" preferred presence has expired
					}
					if tm != "" {
						tp := pairOf(tm)
						if err := em.SetTeamsSession(alice, tp.Availability, tp.Activity); err != nil {
							t.Fatal(err)
						}
					}

					var live []Pair // oldest first
					if app.shows != nil {
						live = append(live, *app.shows)
					}
					if tm != "" {
						live = append(live, pairOf(tm))
					}
					want := offline
					switch {
					case len(live) == 0:
					case pref != "" && !strings.HasPrefix(pref, "expired"):
						want = pairOf(pref)
					default:
						want = live[0]
						for _, p := range live[1:] {
							if position(p.Availability) <= position(want.Availability) { // the newer wins a tie
								want = p
							}
						}
					}
					v, _ := em.Presence(alice)
					if got := (Pair{v.Availability, v.Activity}); got != want {
						t.Fatalf("presence %s, want %s (sessions %+v)", got, want, v.Sessions)
					}
					if wantPref := pref != "" && !strings.HasPrefix(pref, "expired"); (v.Preferred != nil) != wantPref {
						t.Fatalf("preferred %+v, want present=%v", v.Preferred, wantPref)
					}
				})
			}
		}
	}
	if cases != 9*8*8 {
		t.Fatalf("%d cases", cases)
	}
}

// seqNumber reads a sequenceNumber's counter.
func seqNumber(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(s, "C"))
	if err != nil || len(s) != 20 {
		t.Fatalf("sequenceNumber %q", s)
	}
	return n
}

// TestFadeTimeline walks an Available app session minute by minute over
// HTTP: Available/Available for 5 minutes, Available/AvailableInactive for
// 5 more, then Away/Away until the PT15M expiration, then Offline. The
// sequenceNumber grows exactly when the presence changes.
func TestFadeTimeline(t *testing.T) {
	h := newHarness(t)
	if s := h.set(alice, "Available", "Available", "PT15M"); s != 200 {
		t.Fatalf("set: %d", s)
	}
	prevPair, prevSeq := "", 0
	for minute := 0; minute <= 17; minute++ {
		want := "Offline/Offline"
		switch {
		case minute < 5:
			want = "Available/Available"
		case minute < 10:
			want = "Available/AvailableInactive"
		case minute < 15:
			want = "Away/Away"
		}
		status, body := h.do("GET", "/v1.0/users/"+alice+"/presence", nil)
		if status != 200 {
			t.Fatalf("minute %d: %d %v", minute, status, body)
		}
		got := body["availability"].(string) + "/" + body["activity"].(string)
		if got != want {
			t.Fatalf("minute %d: %s, want %s", minute, got, want)
		}
		seq := seqNumber(t, body["sequenceNumber"].(string))
		switch {
		case minute == 0:
		case got != prevPair && seq <= prevSeq:
			t.Fatalf("minute %d: changed to %s but sequenceNumber %d did not grow from %d", minute, got, seq, prevSeq)
		case got == prevPair && seq != prevSeq:
			t.Fatalf("minute %d: unchanged but sequenceNumber moved %d → %d", minute, prevSeq, seq)
		}
		prevPair, prevSeq = got, seq
		h.clock.Advance(time.Minute)
	}
}

// TestFadeEdges checks the instants of the fade exactly, and that a
// refresh restarts it.
func TestFadeEdges(t *testing.T) {
	h := newHarness(t)
	h.set(alice, "Available", "Available", "PT1H")
	steps := []struct {
		to   time.Duration
		want string
	}{
		{5*time.Minute - time.Nanosecond, "Available/Available"},
		{5 * time.Minute, "Available/AvailableInactive"},
		{10*time.Minute - time.Nanosecond, "Available/AvailableInactive"},
		{10 * time.Minute, "Away/Away"},
	}
	for _, s := range steps {
		h.clock.Set(t0.Add(s.to))
		if got := h.presence(alice); got != s.want {
			t.Fatalf("at +%s: %s, want %s", s.to, got, s.want)
		}
	}
	h.set(alice, "Available", "Available", "PT1H") // a refresh at +10m
	h.clock.Advance(4 * time.Minute)
	if got := h.presence(alice); got != "Available/Available" {
		t.Fatalf("4m after a refresh: %s", got)
	}
	h.set(bob, "Busy", "InACall", "PT4H")
	h.clock.Advance(3 * time.Hour)
	if got := h.presence(bob); got != "Busy/InACall" {
		t.Fatalf("Busy faded: %s", got)
	}
}

// TestUnobservedChanges: changes nobody looked at still get their own
// sequence numbers, since presence is computed lazily.
func TestUnobservedChanges(t *testing.T) {
	h := newHarness(t)
	h.set(alice, "Available", "Available", "PT15M")
	before, _ := h.em.Presence(alice)
	h.clock.Advance(16 * time.Minute)
	after, _ := h.em.Presence(alice)
	// Available/AvailableInactive, Away/Away and Offline/Offline happened.
	if d := seqNumber(t, after.SequenceNumber) - seqNumber(t, before.SequenceNumber); d != 3 {
		t.Fatalf("sequenceNumber grew by %d over three unobserved changes (%s → %s)", d, before.SequenceNumber, after.SequenceNumber)
	}
	if after.SequenceNumber <= before.SequenceNumber {
		t.Fatal("sequence numbers do not sort as strings")
	}
}

// TestExpiration: a session lasts exactly its expirationDuration from its
// last refresh; then it is gone, and clearing it is 404.
func TestExpiration(t *testing.T) {
	tests := []struct {
		expiration string
		lasts      time.Duration
	}{
		{"", 5 * time.Minute}, {"PT5M", 5 * time.Minute}, {"PT15M", 15 * time.Minute}, {"PT1H30M", 90 * time.Minute}, {"PT4H", 4 * time.Hour},
	}
	for _, tt := range tests {
		t.Run("expiration="+tt.expiration, func(t *testing.T) {
			h := newHarness(t)
			if s := h.set(alice, "Busy", "InACall", tt.expiration); s != 200 {
				t.Fatalf("set: %d", s)
			}
			v, _ := h.em.Presence(alice)
			if len(v.Sessions) != 1 || !v.Sessions[0].ExpiresAt.Equal(t0.Add(tt.lasts)) || !v.Sessions[0].LastRefreshedAt.Equal(t0) || v.Sessions[0].Kind != KindApp {
				t.Fatalf("session %+v", v.Sessions)
			}
			h.clock.Set(t0.Add(tt.lasts - time.Nanosecond))
			if got := h.presence(alice); got != "Busy/InACall" {
				t.Fatalf("just before expiry: %s", got)
			}
			h.clock.Set(t0.Add(tt.lasts))
			if v, _ := h.em.Presence(alice); v.Availability+"/"+v.Activity != "Offline/Offline" || len(v.Sessions) != 0 {
				t.Fatalf("at expiry: %s", v)
			}
			h.token = h.appToken(tenantID, appID, appKey) // the first one may have expired
			if status, body := h.do("POST", "/v1.0/users/"+alice+"/presence/clearPresence", map[string]string{"sessionId": appID}); status != 404 || errorCode(t, body) != "NotFound" {
				t.Fatalf("clearing an expired session: %d %v", status, body)
			}
		})
	}
	t.Run("refresh extends", func(t *testing.T) {
		h := newHarness(t)
		h.set(alice, "Busy", "InACall", "PT15M")
		h.clock.Advance(10 * time.Minute)
		h.set(alice, "Busy", "InACall", "PT15M")
		h.clock.Advance(14 * time.Minute)
		if got := h.presence(alice); got != "Busy/InACall" {
			t.Fatalf("24m after the first set, 14m after the refresh: %s", got)
		}
	})
	t.Run("one of two sessions expires", func(t *testing.T) {
		h := newHarness(t)
		h.em.SetTeamsSession(alice, "Available", "Available")
		h.set(alice, "Busy", "InACall", "PT5M")
		h.clock.Advance(5 * time.Minute)
		if got := h.presence(alice); got != "Available/Available" {
			t.Fatalf("after the app session expired: %s", got)
		}
	})
}

// TestPreferredPresence: Graph's default lifetimes, an explicit one, the
// rule that it shows only with a session, and clearing it.
func TestPreferredPresence(t *testing.T) {
	tests := []struct {
		pair, expiration string
		lasts            time.Duration
	}{
		{"Busy/Busy", "", 24 * time.Hour},
		{"DoNotDisturb/DoNotDisturb", "", 24 * time.Hour},
		{"Available/Available", "", 7 * 24 * time.Hour},
		{"BeRightBack/BeRightBack", "", 7 * 24 * time.Hour},
		{"Away/Away", "", 7 * 24 * time.Hour},
		{"Offline/OffWork", "", 7 * 24 * time.Hour},
		{"Busy/Busy", "PT1H", time.Hour},
		{"Away/Away", "P2D", 48 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.pair+" "+tt.expiration, func(t *testing.T) {
			h := newHarness(t)
			p := pairOf(tt.pair)
			body := map[string]string{"availability": p.Availability, "activity": p.Activity}
			if tt.expiration != "" {
				body["expirationDuration"] = tt.expiration
			}
			if status, out := h.do("POST", "/v1.0/users/"+alice+"/presence/setUserPreferredPresence", body); status != 200 {
				t.Fatalf("setUserPreferredPresence: %d %v", status, out)
			}
			if got := h.presence(alice); got != "Offline/Offline" {
				t.Fatalf("without a session: %s", got)
			}
			h.em.SetTeamsSession(alice, "DoNotDisturb", "Presenting")
			if got := h.presence(alice); got != tt.pair {
				t.Fatalf("with a session: %s, want %s", got, tt.pair)
			}
			v, _ := h.em.Presence(alice)
			if v.Preferred == nil || !v.Preferred.ExpiresAt.Equal(t0.Add(tt.lasts)) {
				t.Fatalf("preferred %+v, want expiry at +%s", v.Preferred, tt.lasts)
			}
			h.clock.Set(t0.Add(tt.lasts - time.Second))
			if got := h.presence(alice); got != tt.pair {
				t.Fatalf("just before expiry: %s", got)
			}
			h.clock.Set(t0.Add(tt.lasts))
			if got := h.presence(alice); got != "DoNotDisturb/Presenting" {
				t.Fatalf("after expiry: %s", got)
			}
		})
	}
	t.Run("clear", func(t *testing.T) {
		h := newHarness(t)
		h.em.SetTeamsSession(alice, "Available", "Available")
		h.do("POST", "/v1.0/users/"+alice+"/presence/setUserPreferredPresence", map[string]string{"availability": "Busy", "activity": "Busy"})
		if status, _ := h.do("POST", "/v1.0/users/"+alice+"/presence/clearUserPreferredPresence", map[string]string{}); status != 200 {
			t.Fatalf("clear: %d", status)
		}
		if got := h.presence(alice); got != "Available/Available" {
			t.Fatalf("after clear: %s", got)
		}
		if status, _ := h.do("POST", "/v1.0/users/"+alice+"/presence/clearUserPreferredPresence", map[string]string{}); status != 200 {
			t.Fatalf("clearing when none is set: %d", status)
		}
		req := mustRequest(t, "POST", h.url+"/v1.0/users/"+alice+"/presence/clearUserPreferredPresence", "")
		req.Header.Set("Authorization", "Bearer "+h.token)
		if status, _, body := h.send(req); status != 200 {
			t.Fatalf("no body, no Content-Type: %d %v", status, body)
		}
	})
	t.Run("an app cannot move a user with a manual status", func(t *testing.T) {
		h := newHarness(t)
		h.em.SetPreferred(alice, "Available", "Available", 0)
		h.set(alice, "Busy", "InACall", "PT1H")
		if got := h.presence(alice); got != "Available/Available" {
			t.Fatalf("preferred presence lost to an app session: %s", got)
		}
	})
}
