// Package graphclient talks to Microsoft Graph's presence and user APIs
// with OAuth 2.0 client credentials, one Client per tenant.
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
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Config configures a Client for one tenant.
type Config struct {
	TenantID     string
	ClientID     string
	ClientSecret string
	// Cloud names the Microsoft cloud; ignored when both URLs are set.
	Cloud string
	// GraphBaseURL overrides the Graph endpoint, version included.
	GraphBaseURL string
	// LoginBaseURL overrides the identity platform's endpoint.
	LoginBaseURL string
	// Timeout bounds each request; 10 s when zero.
	Timeout    time.Duration
	HTTPClient *http.Client
	UserAgent  string
}

// String describes the configuration without its secret.
func (c Config) String() string {
	return fmt.Sprintf("graphclient.Config{TenantID:%s ClientID:%s Cloud:%s GraphBaseURL:%s ClientSecret:[redacted]}", c.TenantID, c.ClientID, c.Cloud, c.GraphBaseURL)
}

// LogValue keeps the secret out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("tenant", c.TenantID), slog.String("client_id", c.ClientID), slog.String("graph", c.GraphBaseURL))
}

// Client calls Graph for one tenant. It is safe for concurrent use.
type Client struct {
	cfg     Config
	baseURL string
	creds   clientcredentials.Config
	http    *http.Client

	mu     sync.Mutex
	cached *oauth2.Token
}

// tokenLeeway renews a token this long before it expires.
const tokenLeeway = time.Minute

// New returns a Client; it checks cfg but makes no request.
func New(cfg Config) (*Client, error) {
	var missing []string
	for _, f := range []struct{ name, value string }{{"tenant id", cfg.TenantID}, {"client id", cfg.ClientID}, {"client secret", cfg.ClientSecret}} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("graphclient: missing %s", strings.Join(missing, ", "))
	}
	graphURL, loginURL := strings.TrimRight(cfg.GraphBaseURL, "/"), strings.TrimRight(cfg.LoginBaseURL, "/")
	scopeRoot := graphURL
	if graphURL == "" || loginURL == "" {
		cloud, err := CloudByName(cfg.Cloud)
		if err != nil {
			return nil, err
		}
		graphURL, loginURL, scopeRoot = cloud.GraphURL+"/v1.0", cloud.LoginURL, cloud.GraphURL
	} else if u, err := url.Parse(graphURL); err == nil {
		scopeRoot = u.Scheme + "://" + u.Host
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: cfg.Timeout}
	}
	cc := clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		TokenURL:     loginURL + "/" + url.PathEscape(cfg.TenantID) + "/oauth2/v2.0/token",
		Scopes:       []string{scopeRoot + "/.default"},
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	return &Client{cfg: cfg, baseURL: graphURL, creds: cc, http: hc}, nil
}

// ClientID returns the application's client id, the presence sessionId.
func (c *Client) ClientID() string { return c.cfg.ClientID }

// token returns the cached access token, or a new one when it expires
// within tokenLeeway.
func (c *Client) token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cached != nil && time.Until(c.cached.Expiry) > tokenLeeway {
		return c.cached.AccessToken, nil
	}
	t, err := c.creds.Token(context.WithValue(ctx, oauth2.HTTPClient, c.http))
	if err != nil {
		return "", tokenError(c.cfg.TenantID, err)
	}
	c.cached = t
	return t.AccessToken, nil
}

// do sends one request and decodes a 2xx JSON answer into out (when not
// nil). A non-2xx answer becomes an *Error. A 401 renews the token once.
func (c *Client) do(ctx context.Context, op, method, path string, body, out any, header http.Header) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("%s: encode request: %w", op, err)
		}
	}
	for attempt := 0; ; attempt++ {
		err := c.send(ctx, op, method, path, payload, out, header)
		var gerr *Error
		if attempt == 0 && errors.As(err, &gerr) && gerr.StatusCode == http.StatusUnauthorized {
			c.renewToken()
			continue
		}
		return err
	}
}

func (c *Client) send(ctx context.Context, op, method, path string, payload []byte, out any, header http.Header) error {
	token, err := c.token(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, body)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("client-request-id", newRequestID())
	if c.cfg.UserAgent != "" {
		req.Header.Set("User-Agent", c.cfg.UserAgent)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &NetworkError{Op: op, Err: redactURLError(err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return &NetworkError{Op: op, Err: err}
	}
	if resp.StatusCode/100 != 2 {
		return parseError(op, resp, data)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s: decode answer: %w", op, err)
		}
	}
	return nil
}

// renewToken drops the cached token so the next call fetches a new one.
func (c *Client) renewToken() {
	c.mu.Lock()
	c.cached = nil
	c.mu.Unlock()
}

const maxBody = 1 << 20

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
