package lookup

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

// FuzzParseUser: whatever a request names, ParseUser never panics, and
// what it accepts is non-empty, bounded, valid UTF-8 without control
// characters or surrounding spaces, and can be looked up.
func FuzzParseUser(f *testing.F) {
	for _, s := range []string{"alice@contoso.example", "A11CE000-0000-4000-8000-000000000001", "ext:1001", "tel:+1 555 0100", " ", "a\x00b", "\xff", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	vs := NewViews(Options{})
	vs.Set(view(contoso, aliceID, "alice@contoso.example", "1", "Available"))
	f.Fuzz(func(t *testing.T, s string) {
		user, err := ParseUser(s)
		if err != nil {
			return
		}
		if user == "" || len(user) > MaxUser || !utf8.ValidString(user) || strings.TrimSpace(user) != user {
			t.Fatalf("ParseUser(%q) accepted %q", s, user)
		}
		for _, r := range user {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("ParseUser(%q) accepted a control character", s)
			}
		}
		if _, _, err := vs.Get(t.Context(), "", user); err != nil && !strings.Contains(err.Error(), "not watched") {
			t.Fatalf("Get(%q) = %v", user, err)
		}
	})
}

// FuzzIfNoneMatch: ParseIfNoneMatch never panics; a header it accepts
// holds tags without quotes; every ETag the store makes matches itself,
// alone and in a list, strong or weak.
func FuzzIfNoneMatch(f *testing.F) {
	for _, s := range []string{`"abc"`, `W/"abc"`, `"a", W/"b"`, "*", "", `"`, `""`, `"a"b"`, ", ,", `W/`, strings.Repeat(`"x",`, 80)} {
		f.Add(s, "1", "Busy")
	}
	f.Fuzz(func(t *testing.T, header, seq, availability string) {
		m, err := ParseIfNoneMatch(header)
		if err == nil {
			if len(header) > MaxIfNoneMatch {
				t.Fatalf("accepted a header of %d bytes", len(header))
			}
			for _, tag := range m.Tags {
				if strings.Contains(tag, `"`) {
					t.Fatalf("ParseIfNoneMatch(%q) holds the tag %q", header, tag)
				}
			}
		}
		etag := ETag(view(contoso, aliceID, "alice@contoso.example", seq, availability))
		for _, h := range []string{etag, "W/" + etag, `"other", ` + etag} {
			m, err := ParseIfNoneMatch(h)
			if err != nil || !m.Matches(etag) {
				t.Fatalf("the ETag %s does not match the header %s: %v", etag, h, err)
			}
		}
	})
}

// FuzzGetRequest: a request for any user, wait and If-None-Match is
// answered 200, 304, 400 or 404, never a 5xx or a panic, and an error
// carries a JSON body with a code.
func FuzzGetRequest(f *testing.F) {
	f.Add("alice@contoso.example", "", "")
	f.Add(aliceID, "1ms", ETag(view(contoso, aliceID, "alice@contoso.example", "1", "Available")))
	f.Add("ext:1001", "61s", "*")
	f.Add("bob\x01", "-1s", `W/"x"`)
	gin.SetMode(gin.ReleaseMode)
	vs := NewViews(Options{})
	vs.Set(view(contoso, aliceID, "alice@contoso.example", "1", "Available"))
	r := gin.New()
	Register(r, HTTPOptions{Token: testToken, Views: vs})
	f.Fuzz(func(t *testing.T, user, wait, inm string) {
		if user == "" || strings.Contains(user, "/") {
			return // another route
		}
		req := &http.Request{
			Method: http.MethodGet,
			URL:    &url.URL{Path: "/v1/presence/" + user, RawQuery: url.Values{"wait": {wait}}.Encode()},
			Header: http.Header{"Authorization": {"Bearer " + testToken}, "If-None-Match": {inm}},
		}
		// A cancelled request: a wait that would hold ends at once.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		req = req.WithContext(ctx)
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusNotModified:
		case http.StatusBadRequest, http.StatusNotFound:
			var e errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
				t.Fatalf("%d without a JSON error: %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("GET %q wait=%q If-None-Match %q = %d %s", user, wait, inm, rec.Code, rec.Body)
		}
	})
}
