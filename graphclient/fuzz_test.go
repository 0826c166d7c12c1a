package graphclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseError feeds arbitrary statuses, bodies and headers to the error
// parser: it must not panic, must keep the status, and must give bounded,
// single-line, valid UTF-8 text without the scrubbed secret.
func FuzzParseError(f *testing.F) {
	for _, s := range []string{
		`{"error":{"code":"TooManyRequests","message":"Please retry again later.","innerError":{"code":"429","date":"2026-11-23T10:00:00","request-id":"r","status":"429"}}}`,
		`{"error":{"code":"Forbidden","message":"","innerError":{"request-id":"r","client-request-id":"c"}}}`,
		`{"error":{"code":"InvalidArgument","message":"The provided [ExpirationDuration] is out of range."}}`,
		`{"error":"invalid_client","error_description":"AADSTS7000215: x"}`,
		`{"error":null}`, `{"error":{"code":1}}`, `[]`, `null`, ``, `<html>Bad Gateway</html>`,
		"s3cr3t-value", `{"error":{"code":"s3cr3t-value","message":"x s3cr3t-value"}}`,
		`{"error":{"message":"\u0073\u0033cr3t-value"}}`, "s3cr3t\n-value", "\xff\xfe\x00",
	} {
		f.Add(429, []byte(s), "2.128", "req")
	}
	f.Add(503, []byte(strings.Repeat("é", 2000)), "Wed, 21 Oct 2015 07:28:00 GMT", "")
	const secret = "s3cr3t-value"
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter, requestID string) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		h.Set("request-id", requestID)
		e := parseError("op", status, h, body, now, secret)
		if e.StatusCode != status || e.Op != "op" {
			t.Fatalf("status %d op %q, want %d", e.StatusCode, e.Op, status)
		}
		if e.RetryAfter < 0 || e.RetryAfter > MaxRetryAfter {
			t.Fatalf("RetryAfter %s", e.RetryAfter)
		}
		for name, v := range map[string]string{"code": e.Code, "message": e.Message, "request-id": e.RequestID, "client-request-id": e.ClientRequestID} {
			limit := maxField
			if name == "message" {
				limit = maxMessage
			}
			if len(v) > limit+len("...") {
				t.Fatalf("%s is %d bytes", name, len(v))
			}
			if !utf8.ValidString(v) || strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("%s %q is not one line of UTF-8", name, v)
			}
		}
		msg := e.Error()
		if strings.Contains(msg, secret) || !strings.HasPrefix(msg, "op: graph answered ") {
			t.Fatalf("Error() = %q", msg)
		}
	})
}

// FuzzParseRetryAfter checks that no header value panics or gives a wait
// outside 0..MaxRetryAfter, and that plain seconds are read exactly.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "3", "2.128", "0.001", "Wed, 21 Oct 2015 07:28:00 GMT", "Monday, 23-Nov-26 10:01:00 GMT",
		"Mon Nov 23 10:01:00 2026", "1e308", "NaN", "-0", "+5", "0x1p4", "99999999999999999999", "1_000", " 7 "} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d := ParseRetryAfter(v, now)
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("ParseRetryAfter(%q) = %s", v, d)
		}
		if d > 0 && !isDecimal(strings.TrimSpace(v)) {
			if _, err := http.ParseTime(strings.TrimSpace(v)); err != nil {
				t.Fatalf("ParseRetryAfter(%q) = %s for neither seconds nor a date", v, d)
			}
		}
	})
}

func TestClean(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"a\r\n\tb", "a b"},
		{"  x  ", "x"},
		{"se\ncret", "[redacted]"}, // a secret split by a line break is still found
		{"é" + strings.Repeat("é", 10), "ééééé..."},
		{"aaaaaaaaaaé", "aaaaaaaaaa..."}, // a rune is not cut in half
	} {
		if got := clean(tt.in, 11, []string{"se cret", ""}); got != tt.want {
			t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzPresenceJSON: a presence body never panics, and whatever it holds
// as availability or activity is kept as valid UTF-8 text.
func FuzzPresenceJSON(f *testing.F) {
	for _, s := range []string{
		`{"id":"a","availability":"Busy","activity":"InACall","statusMessage":null}`,
		`{"availability":["Busy","InACall"],"activity":7}`, `{"availability":{"a":[1,2]},"activity":null}`,
		`{"availability":"\ud800"}`, `{"workLocation":{"source":"manual","workLocationType":"office"}}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var p Presence
		if json.Unmarshal(body, &p) != nil {
			return
		}
		for _, v := range []string{p.Availability, p.Activity} {
			if !utf8.ValidString(v) {
				t.Fatalf("kept %q from %q", v, body)
			}
		}
	})
}

// FuzzNextPath feeds arbitrary @odata.nextLink values to the list paging:
// never a panic, and a link taken is always a path below the configured
// Graph URL, on its host, so that the token goes nowhere else.
func FuzzNextPath(f *testing.F) {
	for _, s := range []string{
		"https://graph.microsoft.com/v1.0/users?$skiptoken=abc&$top=999",
		"https://evil.example/v1.0/users?$skiptoken=x",
		"https://graph.microsoft.com/beta/users",
		"/v1.0/groups/g/members?$skiptoken=%2F%2F",
		"https://graph.microsoft.com/v1.0/../../x", "//evil.example/v1.0/users", "%zz", "",
	} {
		f.Add(s)
	}
	c, err := New(Config{TenantID: "t", ClientID: "c", ClientSecret: "s", GraphBaseURL: "https://graph.example/v1.0", LoginBaseURL: "https://login.example"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, link string) {
		path, err := c.nextPath(link)
		if err != nil || path == "" {
			if err != nil && (strings.ContainsAny(err.Error(), "\n\r") || len(err.Error()) > 256) {
				t.Fatalf("error text %q", err)
			}
			return
		}
		u, perr := url.Parse(c.graphURL + path)
		if perr != nil || u.Host != "graph.example" || !strings.HasPrefix(path, "/") || !strings.HasPrefix(u.Path, "/v1.0/") || strings.Contains(u.Path, "/../") {
			t.Fatalf("link %q became %q (%v)", link, c.graphURL+path, perr)
		}
	})
}

// FuzzDecodePresences: the streamed decoding of a getPresencesByUserId
// answer accepts what json.Unmarshal of the whole answer accepts (an
// object, or null), with the same presences, and never panics.
func FuzzDecodePresences(f *testing.F) {
	for _, s := range []string{
		`{"value":[{"id":"a","availability":"Busy","activity":"InACall","sequenceNumber":"C1"}]}`,
		`{"x":1,"value":[{"id":"a","availability":["Busy"],"activity":null,"statusMessage":{"message":{"content":"hi"}}}]}`,
		`{"value":null}`, `null`, `{}`, `[]`, `{"value":[1]}`, `{"value":[]} x`, `{"value":[{}`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []Presence
		dec := json.NewDecoder(bytes.NewReader(b))
		err := decodePresences(dec, &got)
		if err == nil {
			if _, err = dec.Token(); err == io.EOF {
				err = nil
			} else if err == nil {
				err = errors.New("data after the answer")
			}
		}
		var want struct {
			Value []Presence `json:"value"`
		}
		werr := json.Unmarshal(b, &want)
		if len(bytes.Trim(b, " \t\r\n")) == 0 {
			werr = nil // an answer of JSON white space alone is empty: left alone
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("%q: streamed: %v; unmarshalled: %v", b, err, werr)
		}
		if err != nil {
			return
		}
		if len(got) != len(want.Value) {
			t.Fatalf("%q: %d presences streamed, %d unmarshalled", b, len(got), len(want.Value))
		}
		for i := range got {
			if !reflect.DeepEqual(got[i], want.Value[i]) {
				t.Fatalf("%q: presence %d streamed %+v, unmarshalled %+v", b, i, got[i], want.Value[i])
			}
		}
	})
}
