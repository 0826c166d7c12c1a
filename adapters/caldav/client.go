package caldav

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// authTransport adds the configured credentials to requests for the
// configured server (and only to it: a redirect elsewhere goes without),
// and caps every response body.
type authTransport struct {
	base             http.RoundTripper
	scheme, host     string
	username, secret string
	bearer           bool
	maxBody          int64
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.secret != "" && req.URL.Scheme == t.scheme && req.URL.Host == t.host {
		req = req.Clone(req.Context())
		if t.bearer {
			req.Header.Set("Authorization", "Bearer "+t.secret)
		} else {
			req.SetBasicAuth(t.username, t.secret)
		}
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{r: resp.Body, left: t.maxBody}
	return resp, nil
}

// errBodyTooLarge is what reading a response beyond the cap returns.
var errBodyTooLarge = errors.New("response body exceeds the configured max_response_bytes")

// cappedBody fails a read beyond its cap instead of returning a cut
// document that might parse.
type cappedBody struct {
	r    io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, _ := b.r.Read(one[:]); n > 0 {
			return 0, errBodyTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.r.Close() }

// multistatus is a WebDAV 207 answer, reduced to the properties read here.
type multistatus struct {
	Responses []response `xml:"DAV: response"`
	SyncToken string     `xml:"DAV: sync-token"`
}

type response struct {
	Href      string     `xml:"DAV: href"`
	Status    string     `xml:"DAV: status"`
	Propstats []propstat `xml:"DAV: propstat"`
}

type propstat struct {
	Status string `xml:"DAV: status"`
	Prop   struct {
		ETag      string `xml:"DAV: getetag"`
		CTag      string `xml:"http://calendarserver.org/ns/ getctag"`
		SyncToken string `xml:"DAV: sync-token"`
		Data      string `xml:"urn:ietf:params:xml:ns:caldav calendar-data"`
	} `xml:"DAV: prop"`
}

// statusCode reads the code of an HTTP status line ("HTTP/1.1 404 Not
// Found"); an absent line means 200, as in a propstat.
func statusCode(line string) int {
	if line == "" {
		return http.StatusOK
	}
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return 0
	}
	code, _ := strconv.Atoi(fields[1])
	return code
}

// found returns the properties of r's 200 propstat.
func (r response) found() (etag, ctag, syncToken, data string) {
	for _, ps := range r.Propstats {
		if statusCode(ps.Status) == http.StatusOK {
			return ps.Prop.ETag, ps.Prop.CTag, ps.Prop.SyncToken, ps.Prop.Data
		}
	}
	return "", "", "", ""
}

// parseMultistatus decodes a 207 body.
func parseMultistatus(body io.Reader) (*multistatus, error) {
	var ms multistatus
	if err := xml.NewDecoder(body).Decode(&ms); err != nil {
		return nil, fmt.Errorf("decode multistatus: %w", err)
	}
	return &ms, nil
}

// statusError is a request the server answered with an unexpected status.
type statusError struct {
	method string
	code   int
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s answered %d %s", e.method, e.code, http.StatusText(e.code))
}

// dav sends one WebDAV request with an XML body and decodes the 207.
func dav(ctx context.Context, c *http.Client, method, target, depth, body string) (*multistatus, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", `application/xml; charset="utf-8"`)
	req.Header.Set("Depth", depth)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusMultiStatus {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, &statusError{method: method, code: resp.StatusCode}
	}
	return parseMultistatus(resp.Body)
}

// The request bodies. Hrefs put into multiget are escaped.
const (
	probeBody = `<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/"><d:prop><cs:getctag/><d:sync-token/></d:prop></d:propfind>`
	listBody = `<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>`
	syncBodyFormat = `<?xml version="1.0" encoding="utf-8"?>
<d:sync-collection xmlns:d="DAV:"><d:sync-token>%s</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>`
	multigetHead = `<?xml version="1.0" encoding="utf-8"?>
<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/><c:calendar-data/></d:prop>`
	multigetTail = `</c:calendar-multiget>`
)

// escapeXML escapes text for an XML element.
func escapeXML(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// hrefPath returns the path an href names, resolved against base, as the
// key an object is known by.
func hrefPath(base *url.URL, href string) (string, error) {
	u, err := base.Parse(strings.TrimSpace(href))
	if err != nil {
		return "", fmt.Errorf("href %q: %w", href, err)
	}
	return u.EscapedPath(), nil
}
