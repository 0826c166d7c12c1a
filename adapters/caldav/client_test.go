package caldav

import (
	"bytes"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestParseMultistatus reads a sync-collection answer: a changed member
// with its etag, a removed one, and the new token.
func TestParseMultistatus(t *testing.T) {
	body := `<?xml version="1.0"?>
<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
 <response><href>/alice/work/a.ics</href><propstat><prop><getetag>"1"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response>
 <response><href>/alice/work/b%20c.ics</href><status>HTTP/1.1 404 Not Found</status></response>
 <sync-token>http://radicale.org/ns/sync/42</sync-token>
</multistatus>`
	ms, err := parseMultistatus(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms.Responses) != 2 || ms.SyncToken != "http://radicale.org/ns/sync/42" {
		t.Fatalf("got %+v", ms)
	}
	if etag, _, _, _ := ms.Responses[0].found(); etag != `"1"` {
		t.Errorf("etag %q", etag)
	}
	if code := statusCode(ms.Responses[1].Status); code != 404 {
		t.Errorf("status %d", code)
	}
	base, _ := url.Parse("http://127.0.0.1/alice/work/")
	if p, _ := hrefPath(base, ms.Responses[1].Href); p != "/alice/work/b%20c.ics" {
		t.Errorf("href path %q", p)
	}
}

// TestCappedBody fails a read beyond the cap instead of cutting the
// document short.
func TestCappedBody(t *testing.T) {
	b := &cappedBody{r: io.NopCloser(strings.NewReader("0123456789")), left: 4}
	if _, err := io.ReadAll(b); !errors.Is(err, errBodyTooLarge) {
		t.Errorf("got %v, want errBodyTooLarge", err)
	}
	b = &cappedBody{r: io.NopCloser(strings.NewReader("0123")), left: 4}
	if got, err := io.ReadAll(b); err != nil || string(got) != "0123" {
		t.Errorf("got %q, %v", got, err)
	}
}

// FuzzParseMultistatus feeds arbitrary XML to the multistatus reader and
// what is read from it: no panic, whatever the server sends.
func FuzzParseMultistatus(f *testing.F) {
	f.Add([]byte(`<multistatus xmlns="DAV:"><response><href>/a.ics</href><propstat><prop><getetag>"1"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response><sync-token>t</sync-token></multistatus>`))
	f.Add([]byte(`<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:response><d:href>%zz</d:href><d:propstat><d:prop><c:calendar-data>BEGIN:VCALENDAR</c:calendar-data></d:prop><d:status>HTTP/1.1</d:status></d:propstat></d:response></d:multistatus>`))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "aaaa">]><multistatus xmlns="DAV:">&a;</multistatus>`))
	base, _ := url.Parse("http://127.0.0.1/cal/")
	f.Fuzz(func(t *testing.T, data []byte) {
		body := &cappedBody{r: io.NopCloser(bytes.NewReader(data)), left: 1 << 16}
		ms, err := parseMultistatus(body)
		if err != nil {
			return
		}
		for _, r := range ms.Responses {
			_, _, _, data := r.found()
			_ = statusCode(r.Status)
			_, _ = hrefPath(base, r.Href)
			_, _ = parseObject([]byte(data), DefaultMaxObjectBytes, person{loc: time.UTC})
		}
	})
}
