// Package graphclient talks to Microsoft Graph's presence, user and calendar
// APIs for one tenant, with OAuth 2.0 client credentials.
//
// A Client sets and clears the application's presence session
// (setPresence / clearPresence, session id always the application's client
// id), reads presence, resolves and lists users and group members, and
// reads calendar events. It makes exactly one HTTP request per call (per
// page for the lists, per 650 ids for GetPresencesByUserID), except that a
// 401 from Graph renews the access token and repeats the request once:
// retries, backoff, rate limits
// and circuit breaking belong to the caller, which sees every 429 and 5xx.
// Its errors report facts and leave the policy to the caller: an *Error
// carries Graph's status, error code and Retry-After, a *TokenError the
// identity platform's, a *NetworkError says no answer came (refused, reset,
// timed out, cancelled), and RetryAfter gives the wait asked for.
//
// Neither the client secret nor an access token ever appears in an error, in
// fmt's %v, %+v, %s or %#v of a Config or a Client, or in their slog values.
package graphclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds each request when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// maxBody bounds how much of an answer is read.
const maxBody = 1 << 20

// defaultUserAgent is sent when Config.UserAgent is empty.
const defaultUserAgent = "presence-bridge-graphclient"

// Config configures a Client for one tenant.
type Config struct {
	// TenantID is the Entra tenant, as a GUID or a verified domain.
	TenantID string
	// ClientID is the application (client) id; it is also the presence
	// session id.
	ClientID string
	// ClientSecret is the application's client secret. It is never printed.
	ClientSecret string
	// ClientCertificate is a PEM bundle with the application's certificate
	// and its RSA private key, used instead of ClientSecret: each token
	// request carries a client assertion signed with the key. Exactly one
	// of the two is set. It is never printed.
	ClientCertificate []byte
	// Cloud names the Microsoft cloud (see CloudByName); "" is global. It is
	// ignored when both GraphBaseURL and LoginBaseURL are set.
	Cloud string
	// GraphBaseURL overrides Graph's endpoint, version included, such as
	// "http://127.0.0.1:8081/v1.0". A URL without a path gets "/v1.0".
	GraphBaseURL string
	// LoginBaseURL overrides the identity platform's endpoint, such as
	// "http://127.0.0.1:8081"; the token URL is
	// LoginBaseURL + "/" + TenantID + "/oauth2/v2.0/token".
	LoginBaseURL string
	// Scope overrides the token scope, "<Graph root>/.default" by default,
	// where the Graph root is GraphBaseURL's scheme and host.
	Scope string
	// Timeout bounds each request, token requests included; DefaultTimeout
	// when zero.
	Timeout time.Duration
	// HTTPClient sends the requests; a dedicated client when nil.
	HTTPClient *http.Client
	// UserAgent is sent with every Graph request.
	UserAgent string
}

// String describes the configuration with its secret redacted.
func (c Config) String() string {
	return fmt.Sprintf("graphclient.Config{TenantID:%q ClientID:%q ClientSecret:%s ClientCertificate:%s Cloud:%q GraphBaseURL:%q LoginBaseURL:%q Timeout:%s}",
		c.TenantID, c.ClientID, redacted(c.ClientSecret), redacted(string(c.ClientCertificate)), c.Cloud, c.GraphBaseURL, c.LoginBaseURL, c.Timeout)
}

// GoString is String, so that %#v redacts the secret too.
func (c Config) GoString() string { return c.String() }

// LogValue describes the configuration to slog with its secret redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("tenant", c.TenantID),
		slog.String("client_id", c.ClientID),
		slog.String("client_secret", redacted(c.ClientSecret)),
		slog.String("client_certificate", redacted(string(c.ClientCertificate))),
		slog.String("cloud", c.Cloud),
		slog.String("graph_url", c.GraphBaseURL),
		slog.String("login_url", c.LoginBaseURL),
	)
}

// redacted says whether a secret is set without showing it.
func redacted(secret string) string {
	if secret == "" {
		return "[empty]"
	}
	return "[redacted]"
}

// Client calls Graph for one tenant. It is safe for concurrent use.
type Client struct {
	tenant     string
	clientID   string
	cloud      Cloud
	graphURL   string // Graph base URL, version included, no trailing slash
	timeout    time.Duration
	userAgent  string
	http       *http.Client
	noPresence bool     // the cloud offers no presence API
	scrub      []string // strings never to repeat in an error: the secret
	tokens     *tokens
}

// String names the client without its secret or token. It, GoString and
// LogValue have value receivers so that printing a dereferenced Client is
// redacted too.
func (c Client) String() string {
	return fmt.Sprintf("graphclient.Client{TenantID:%q ClientID:%q Graph:%q}", c.tenant, c.clientID, c.graphURL)
}

// GoString is String, so that %#v shows no secret either.
func (c Client) GoString() string { return c.String() }

// LogValue describes the client to slog without its secret or token.
func (c Client) LogValue() slog.Value {
	return slog.GroupValue(slog.String("tenant", c.tenant), slog.String("client_id", c.clientID), slog.String("graph_url", c.graphURL))
}

// New checks cfg and returns a Client. It makes no request: the first call
// fetches the first token. Its errors never include the secret.
func New(cfg Config) (*Client, error) {
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"tenant id", cfg.TenantID}, {"client id", cfg.ClientID}, {"client secret or certificate", cfg.ClientSecret + string(cfg.ClientCertificate)},
	} {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("graphclient: missing %s", strings.Join(missing, ", "))
	}
	var cert *certificate
	if len(cfg.ClientCertificate) > 0 {
		if cfg.ClientSecret != "" {
			return nil, errors.New("graphclient: set a client secret or a client certificate, not both")
		}
		var err error
		if cert, err = parseCertificate(cfg.ClientCertificate); err != nil {
			return nil, fmt.Errorf("graphclient: %w", err)
		}
	}
	if strings.ContainsAny(cfg.TenantID, "/?#") {
		return nil, fmt.Errorf("graphclient: tenant id %q is not a GUID or a domain", cfg.TenantID)
	}
	cloud, err := resolveCloud(cfg)
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32
		hc = &http.Client{Transport: tr, Timeout: timeout}
	}
	scope := cfg.Scope
	if scope == "" {
		u, _ := url.Parse(cloud.GraphURL) // checked by resolveCloud
		scope = u.Scheme + "://" + u.Host + "/.default"
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = defaultUserAgent
	}
	c := &Client{
		tenant:     cfg.TenantID,
		clientID:   cfg.ClientID,
		cloud:      cloud,
		graphURL:   cloud.GraphURL,
		timeout:    timeout,
		userAgent:  ua,
		http:       hc,
		noPresence: !cloud.Presence,
		scrub:      secretForms(cfg.ClientSecret),
	}
	c.tokens = newTokens(fetcher{
		tenant:   cfg.TenantID,
		clientID: cfg.ClientID,
		secret:   cfg.ClientSecret,
		cert:     cert,
		tokenURL: strings.TrimRight(cloud.LoginURL, "/") + "/" + url.PathEscape(cfg.TenantID) + "/oauth2/v2.0/token",
		scope:    scope,
		http:     hc,
		timeout:  timeout,
		scrub:    c.scrub,
	})
	return c, nil
}

// resolveCloud picks the endpoints: the named cloud's, with each explicit
// URL overriding its part. Cloud.GraphURL of the result includes the API
// version.
func resolveCloud(cfg Config) (Cloud, error) {
	var cloud Cloud
	if cfg.GraphBaseURL == "" || cfg.LoginBaseURL == "" {
		var err error
		if cloud, err = CloudByName(cfg.Cloud); err != nil {
			return Cloud{}, fmt.Errorf("graphclient: %w", err)
		}
		cloud.GraphURL += "/v1.0"
	} else {
		cloud = Cloud{Name: "custom", Presence: true}
	}
	if cfg.GraphBaseURL != "" {
		u, err := checkURL("graph base URL", cfg.GraphBaseURL)
		if err != nil {
			return Cloud{}, err
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1.0"
		}
		cloud.GraphURL = strings.TrimRight(u.String(), "/")
		cloud.Presence = true
	}
	if cfg.LoginBaseURL != "" {
		u, err := checkURL("login base URL", cfg.LoginBaseURL)
		if err != nil {
			return Cloud{}, err
		}
		cloud.LoginURL = strings.TrimRight(u.String(), "/")
	}
	return cloud, nil
}

// checkURL accepts an absolute http(s) URL without a query or credentials.
func checkURL(what, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// The text could hold a password: it is not repeated.
		return nil, fmt.Errorf("graphclient: %s is not a valid URL", what)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("graphclient: %s must not carry credentials, a query or a fragment", what)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("graphclient: %s %q is not an absolute http(s) URL", what, u.String())
	}
	return u, nil
}

// ClientID returns the application's client id, which is also the presence
// session id.
func (c *Client) ClientID() string { return c.clientID }

// TenantID returns the tenant the client works for.
func (c *Client) TenantID() string { return c.tenant }

// GraphURL returns the Graph base URL in use, version included.
func (c *Client) GraphURL() string { return c.graphURL }

// request is one Graph call.
type request struct {
	op     string // what the call does, for errors: "set presence for <user>"
	method string
	path   string // below the base URL, escaped, with its query
	body   any    // encoded as JSON when not nil
	header http.Header
	// decode, when not nil, reads a 2xx answer as it arrives (at most
	// maxBody bytes) instead of out: no copy of the whole body is made.
	decode func(*json.Decoder) error
}

// do sends r and decodes a 2xx JSON answer into out when out is not nil
// and the answer has a body. A non-2xx answer becomes an *Error. A 401 renews the token and repeats the
// request once; a second 401 is returned.
func (c *Client) do(ctx context.Context, r request, out any) error {
	if c.tokens == nil {
		return fmt.Errorf("%s: %w: the Client was not made by New", r.op, ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return &NetworkError{Op: r.op, Err: err}
	}
	var payload []byte
	if r.body != nil {
		var err error
		if payload, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("%s: encode request: %w", r.op, err)
		}
	}
	for attempt := 0; ; attempt++ {
		token, gen, err := c.tokens.get(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", r.op, err)
		}
		err = c.send(ctx, r, payload, token, out)
		var gerr *Error
		if attempt == 0 && errors.As(err, &gerr) && gerr.StatusCode == http.StatusUnauthorized {
			c.tokens.invalidate(gen)
			continue
		}
		return err
	}
}

// send makes one HTTP request with the given token.
func (c *Client) send(ctx context.Context, r request, payload []byte, token string, out any) error {
	if err := ctx.Err(); err != nil {
		return &NetworkError{Op: r.op, Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.graphURL+r.path, body)
	if err != nil {
		return fmt.Errorf("%s: %w", r.op, err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	crid := newRequestID()
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("client-request-id", crid)
	req.Header.Set("User-Agent", c.userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &NetworkError{Op: r.op, Err: redactURLError(err)}
	}
	defer resp.Body.Close()
	if r.decode != nil && resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return streamAnswer(r, resp.Body)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return &NetworkError{Op: r.op, Err: redactURLError(err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := parseError(r.op, resp.StatusCode, resp.Header, data, time.Now(), append([]string{token}, c.scrub...)...)
		if e.ClientRequestID == "" {
			e.ClientRequestID = crid
		}
		return e
	}
	// Any 2XX is success (Graph promises no more): a 204, or another 2XX
	// without a body, leaves out as it was.
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if len(data) > maxBody {
		return fmt.Errorf("%s: answer larger than %d bytes", r.op, maxBody)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", r.op, err)
	}
	return nil
}

// streamAnswer decodes a 2xx answer with r.decode straight from body. An
// empty answer leaves the result as it was, as in send; a body over
// maxBody, a broken connection or bad JSON fail as they do there.
func streamAnswer(r request, body io.Reader) error {
	cr := &capReader{r: body, left: maxBody}
	dec := json.NewDecoder(cr)
	err := r.decode(dec)
	if err == nil {
		if _, err = dec.Token(); err == io.EOF {
			err = nil
		} else if err == nil {
			err = errors.New("data after the answer")
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errAnswerTooLarge):
		return fmt.Errorf("%s: answer larger than %d bytes", r.op, maxBody)
	case cr.err != nil:
		return &NetworkError{Op: r.op, Err: redactURLError(cr.err)}
	}
	return fmt.Errorf("%s: decode answer: %w", r.op, err)
}

// errAnswerTooLarge is what a capReader returns past its limit.
var errAnswerTooLarge = errors.New("answer too large")

// capReader reads at most left bytes of r, then fails with
// errAnswerTooLarge if r has more; err keeps a failure of r itself (not
// io.EOF).
type capReader struct {
	r    io.Reader
	left int64
	err  error
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, errAnswerTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1] // one byte more than allowed tells a body that is too large
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return 0, errAnswerTooLarge
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// newRequestID returns a random UUID (version 4) for client-request-id.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// userPath returns "/users/{id}" with id escaped, or an error when it is
// empty.
func userPath(op, id string) (string, error) {
	if strings.TrimSpace(id) == "" {
		return "", fmt.Errorf("%s: %w: empty user id", op, ErrInvalidArgument)
	}
	return "/users/" + url.PathEscape(id), nil
}

// CloseIdleConnections closes the client's idle connections, so that a
// server shutting down does not wait for them.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }
