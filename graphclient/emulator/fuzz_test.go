package emulator

import (
	"bytes"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient/graphlimits"
)

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"PT5M", 5 * time.Minute, true}, {"PT1H", time.Hour, true}, {"PT1H30M", 90 * time.Minute, true},
		{"PT4H", 4 * time.Hour, true}, {"PT300S", 5 * time.Minute, true}, {"PT0.5S", 500 * time.Millisecond, true},
		{"P1D", 24 * time.Hour, true}, {"P1DT2H", 26 * time.Hour, true}, {"P0DT0H15M0S", 15 * time.Minute, true},
		{"P1W", 0, false}, {"P1Y", 0, false}, {"P1M", 0, false}, {"P1Y2M3W4D", 0, false}, {"PT1M", time.Minute, true},
		{"PT0S", 0, true}, {"PT1.000000001S", time.Second + time.Nanosecond, true},
		{"P", 0, false}, {"PT", 0, false}, {"P1DT", 0, false}, {"5M", 0, false}, {"", 0, false},
		{"-PT5M", 0, false}, {"PT-5M", 0, false}, {"pt5m", 0, false}, {"PT5m", 0, false},
		{"PT1.5M", 0, false}, {"PT0,5S", 0, false}, {"PT5M1H", 0, false}, {"P1D1D", 0, false},
		{"PT1HT1M", 0, false}, {"PT.5S", 0, false}, {"PT5.S", 0, false}, {"P99999999999D", 0, false},
		{"PT5M ", 0, false}, {"P1H", 0, false},
	} {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %s, %v", tt.in, got, err)
		}
	}
	for _, d := range []time.Duration{5 * time.Minute, 90 * time.Minute, 4 * time.Hour, 1500 * time.Millisecond, time.Nanosecond} {
		if back, err := ParseDuration(FormatDuration(d)); err != nil || back != d {
			t.Errorf("FormatDuration(%s) = %s, reads back as %s, %v", d, FormatDuration(d), back, err)
		}
	}
}

// FuzzParseDuration: no input panics, and an accepted duration is within
// [0, ten years].
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"PT5M", "PT4H", "P1DT2H3M4.5S", "PT", "P99999999999D", "P1Y2M3W4DT5H6M7.123456789S", "PT0.0000000001S"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 || d > maxDuration {
			t.Fatalf("ParseDuration(%q) = %s", s, d)
		}
		if again, _ := ParseDuration(s); again != d {
			t.Fatalf("ParseDuration(%q) is not deterministic", s)
		}
	})
}

// FuzzParseSetPresence: no setPresence body panics the parser or the
// handler; what the parser accepts is a settable pair with a session and
// an expiration in range, and the handler answers 200 exactly then (400 or
// 413 otherwise).
func FuzzParseSetPresence(f *testing.F) {
	for _, s := range []string{
		`{"sessionId":"a","availability":"Busy","activity":"InACall","expirationDuration":"PT5M"}`,
		`{"sessionId":"22553876-f5ab-4529-bffb-cfe50aa89f87","availability":"Available","activity":"Available","expirationDuration":"PT1H"}`,
		`{"sessionId":1}`, `[]`, `null`, `{}`, `{"@odata.type":"x","sessionId":"a","availability":"Away","activity":"Away"}`,
		`{"sessionId":"a","availability":"DoNotDisturb","activity":"Presenting","expirationDuration":null}`,
		`{"sessionId":"a","sessionId":"b","availability":"Busy","activity":"InAConferenceCall"}`,
	} {
		f.Add([]byte(s))
	}
	clock := NewFakeClock(t0)
	cfg := testConfig()
	cfg.Throttle = Throttle{Limit: 1 << 30, Window: time.Hour}
	em, err := New(cfg, WithClock(clock))
	if err != nil {
		f.Fatal(err)
	}
	token := signToken(em.signKey, claims{Audience: "https://graph.microsoft.com", AppID: appID, IDType: "app", Roles: []string{"Presence.ReadWrite.All"}, TenantID: tenantID}, t0)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, perr := parseSetPresence(body)
		if perr == nil {
			if req.SessionID == "" || !slices.Contains(appPairs, req.Pair) || req.Expiration < minExpiration || req.Expiration > maxExpiration {
				t.Fatalf("accepted %q as %+v", body, req)
			}
		} else if perr.status != 400 || perr.code == "" {
			t.Fatalf("rejected %q with %+v", body, perr)
		}
		r := httptest.NewRequest("POST", "/v1.0/users/"+alice+"/presence/setPresence", bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		em.ServeHTTP(rec, r)
		want := 200
		if perr != nil {
			want = 400
		}
		if rec.Code != want && !(rec.Code == 413 && len(body) > maxBody) {
			t.Fatalf("status %d for %q, want %d: %s", rec.Code, body, want, rec.Body)
		}
	})
}

func TestParseIDFilter(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"id in ('a','b')", []string{"a", "b"}},
		{"id in ( 'a' , 'b' )", []string{"a", "b"}},
		{"id eq 'a'", []string{"a"}},
		{"id eq 'a' or id in ('b','c') or (id eq 'd')", []string{"a", "b", "c", "d"}},
		{"id eq 'o''brien'", []string{"o'brien"}},
		{"id in ('')", []string{""}},
		{"id in ()", nil}, {"id in ('a',)", nil}, {"id in ('a'", nil}, {"id eq a", nil}, {"id ne 'a'", nil},
		{"ID eq 'a'", nil}, {"id eq 'a' and id eq 'b'", nil}, {"id eq 'a", nil}, {"", nil}, {"(id eq 'a'", nil},
		{strings.Repeat("(", 40) + "id eq 'a'" + strings.Repeat(")", 40), nil},
	} {
		got, err := ParseIDFilter(tt.in)
		if (err == nil) != (tt.want != nil) || !slices.Equal(got, tt.want) {
			t.Errorf("ParseIDFilter(%q) = %q, %v", tt.in, got, err)
		}
	}
	if _, err := ParseIDFilter("id in (" + strings.Repeat("'a',", 650) + "'b')"); err == nil {
		t.Error("651 ids accepted")
	}
}

// FuzzParseIDFilter: no input panics; what is accepted round-trips: the
// ids written back as `id in (...)` parse to the same ids.
func FuzzParseIDFilter(f *testing.F) {
	for _, s := range []string{"id in ('a','b')", "id eq 'x'", "id eq 'a' or (id in ('b'))", "id eq 'o''b'", "((", "id in ('a',"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := ParseIDFilter(s)
		if err != nil {
			return
		}
		if len(ids) == 0 || len(ids) > graphlimits.MaxIDsPerLookup {
			t.Fatalf("ParseIDFilter(%q) = %d ids", s, len(ids))
		}
		quoted := make([]string, len(ids))
		for i, id := range ids {
			quoted[i] = "'" + strings.ReplaceAll(id, "'", "''") + "'"
		}
		back, err := ParseIDFilter("id in (" + strings.Join(quoted, ",") + ")")
		if err != nil || !slices.Equal(back, ids) {
			t.Fatalf("ParseIDFilter(%q) = %q, written back: %q, %v", s, ids, back, err)
		}
	})
}

// FuzzParseStatusMessage: no setStatusMessage body panics; an accepted one
// is text, and its expiry, when it has one, is the instant its
// dateTimeTimeZone names.
func FuzzParseStatusMessage(f *testing.F) {
	for _, s := range []string{
		`{"statusMessage":{"message":{"content":"Hey I'm currently in a meeting.","contentType":"text"},"expiryDateTime":{"dateTime":"2022-10-18T17:05:33.2079781","timeZone":"Pacific Standard Time"}}}`,
		`{"statusMessage":{"message":{"content":"x"}}}`, `{"statusMessage":{"message":{"content":"x","contentType":"html"}}}`,
		`{"statusMessage":{"message":{"content":""},"expiryDateTime":{"dateTime":"2026-11-23T11:00","timeZone":"Europe/Paris"}}}`,
		`{"statusMessage":{"message":null,"expiryDateTime":{"timeZone":"../../etc/passwd"}}}`, `{"statusMessage":[]}`, `{}`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := parseStatusMessage(body)
		if err != nil {
			if err.status != 400 {
				t.Fatalf("status %d for %q", err.status, body)
			}
			return
		}
		if s.contentType != "text" {
			t.Fatalf("content type %q accepted from %q", s.contentType, body)
		}
		if s.expiry != nil {
			at, aerr := s.expiry.instant()
			if aerr != nil || !at.Equal(s.expiresAt) {
				t.Fatalf("expiry %+v: %v, %v", s.expiry, at, aerr)
			}
		}
	})
}
