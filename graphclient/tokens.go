package graphclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// TokenEarlyExpiry is how long before its expiry a cached access token is
// replaced.
const TokenEarlyExpiry = time.Minute

// defaultTokenLifetime is assumed for a token answer without expires_in.
const defaultTokenLifetime = time.Hour

// tokens caches the tenant's access token. A 401 from Graph throws the cached
// token away through invalidate, once per token however many requests saw
// the 401.
type tokens struct {
	fetch fetcher

	mu  sync.Mutex
	src oauth2.TokenSource // reuses its token until TokenEarlyExpiry before expiry
	gen uint64             // counts the sources, so a stale 401 renews nothing
}

func newTokens(f fetcher) *tokens {
	t := &tokens{fetch: f}
	t.src = oauth2.ReuseTokenSourceWithExpiry(nil, f, TokenEarlyExpiry)
	return t
}

// get returns an access token and the generation it came from. A token
// request is bounded by the client's timeout; when ctx ends first, get
// returns at once and a token that arrives later is still cached.
func (t *tokens) get(ctx context.Context) (string, uint64, error) {
	t.mu.Lock()
	src, gen := t.src, t.gen
	t.mu.Unlock()
	if ctx.Done() == nil { // ctx never ends: no need to watch it
		tok, err := src.Token()
		if err != nil {
			return "", gen, err
		}
		return tok.AccessToken, gen, nil
	}
	type result struct {
		tok *oauth2.Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := src.Token()
		done <- result{tok, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return "", gen, r.err
		}
		return r.tok.AccessToken, gen, nil
	case <-ctx.Done():
		return "", gen, &TokenError{Tenant: t.fetch.tenant, Err: ctx.Err()}
	}
}

// invalidate drops the token of generation gen, so that the next get
// fetches a new one. A token already renewed is kept.
func (t *tokens) invalidate(gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen == gen {
		t.gen++
		t.src = oauth2.ReuseTokenSourceWithExpiry(nil, t.fetch, TokenEarlyExpiry)
	}
}

// fetcher asks the identity platform for a new token on every call, through
// clientcredentials, and turns failures into *TokenError.
type fetcher struct {
	tenant, clientID, secret string
	cert                     *certificate // instead of secret
	tokenURL, scope          string
	http                     *http.Client
	timeout                  time.Duration
	scrub                    []string
}

// Token implements oauth2.TokenSource.
func (f fetcher) Token() (*oauth2.Token, error) {
	cc := clientcredentials.Config{
		ClientID:     f.clientID,
		ClientSecret: f.secret,
		TokenURL:     f.tokenURL,
		Scopes:       []string{f.scope},
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	if f.cert != nil {
		assertion, err := f.cert.assertion(f.clientID, f.tokenURL, time.Now())
		if err != nil {
			return nil, &TokenError{Tenant: f.tenant, Err: err}
		}
		cc.EndpointParams = url.Values{"client_assertion_type": {AssertionType}, "client_assertion": {assertion}}
	}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), oauth2.HTTPClient, f.http), f.timeout)
	defer cancel()
	tok, err := cc.Token(ctx)
	if err != nil {
		return nil, tokenError(f.tenant, err, time.Now(), f.scrub)
	}
	if tok.Expiry.IsZero() {
		tok.Expiry = time.Now().Add(defaultTokenLifetime)
	}
	return tok, nil
}

// TokenError is a failure to get an access token from the identity
// platform. It names the tenant and the platform's error codes; it never
// holds the secret, a token or the raw answer.
type TokenError struct {
	// Tenant is the tenant the token was for.
	Tenant string
	// StatusCode is the identity platform's HTTP status, 0 when it did not
	// answer.
	StatusCode int
	// Code is OAuth's error code, such as invalid_client.
	Code string
	// AADSTS is Entra's error code, such as AADSTS7000215.
	AADSTS string
	// Description is the first line of error_description, secret removed.
	Description string
	// TraceID and CorrelationID identify the failure to Microsoft support.
	TraceID, CorrelationID string
	// RetryAfter is the wait asked for by a 429 or 503, or 0.
	RetryAfter time.Duration
	// Err is the cause when the platform did not answer (network, timeout),
	// with any URL query removed.
	Err error
}

// Error implements error.
func (e *TokenError) Error() string {
	var b strings.Builder
	b.WriteString("get token for tenant " + e.Tenant)
	switch {
	case e.StatusCode != 0 || e.Code != "":
		fmt.Fprintf(&b, ": identity platform answered %d", e.StatusCode)
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
		if e.Description != "" {
			b.WriteString(": " + e.Description)
		} else if e.AADSTS != "" {
			b.WriteString(" (" + e.AADSTS + ")")
		}
		if e.TraceID != "" {
			b.WriteString(" (trace id " + e.TraceID + ")")
		}
	case e.Err != nil:
		b.WriteString(": " + e.Err.Error())
	default:
		b.WriteString(": failed")
	}
	return b.String()
}

// Unwrap returns the network or context error, if any.
func (e *TokenError) Unwrap() error { return e.Err }

// aadstsCode finds an Entra error code such as AADSTS7000215.
var aadstsCode = regexp.MustCompile(`AADSTS\d+`)

// tokenError turns an oauth2 failure into a *TokenError. The raw answer is
// dropped; only its codes and the first line of its description, with the
// secret scrubbed, are kept.
func tokenError(tenant string, err error, now time.Time, scrub []string) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return &TokenError{Tenant: tenant, Err: newScrubbedError(redactURLError(err), scrub)}
	}
	te := &TokenError{Tenant: tenant, Code: clean(re.ErrorCode, 64, scrub)}
	if re.Response != nil {
		te.StatusCode = re.Response.StatusCode
		if te.StatusCode == http.StatusTooManyRequests || te.StatusCode == http.StatusServiceUnavailable {
			te.RetryAfter = ParseRetryAfter(re.Response.Header.Get("Retry-After"), now)
		}
	}
	desc := re.ErrorDescription
	var body struct {
		ErrorCodes    []int  `json:"error_codes"`
		TraceID       string `json:"trace_id"`
		CorrelationID string `json:"correlation_id"`
	}
	if json.Unmarshal(re.Body, &body) == nil {
		te.TraceID = clean(body.TraceID, 64, scrub)
		te.CorrelationID = clean(body.CorrelationID, 64, scrub)
		if len(body.ErrorCodes) > 0 && !strings.Contains(desc, "AADSTS") {
			desc = fmt.Sprintf("AADSTS%d", body.ErrorCodes[0])
		}
	}
	// Entra's descriptions go on with "\r\nTrace ID: ..." lines.
	if i := strings.IndexAny(desc, "\r\n"); i >= 0 {
		desc = desc[:i]
	}
	te.Description = clean(desc, 300, scrub)
	te.AADSTS = aadstsCode.FindString(te.Description)
	return te
}

// scrubbedError is an error from outside this package whose text might
// echo a secret: its text is scrubbed once, when it is made, so that the
// value holds no secret either.
type scrubbedError struct {
	msg string
	err error
}

func newScrubbedError(err error, scrub []string) error {
	return &scrubbedError{msg: scrubAll(err.Error(), scrub), err: err}
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// redactURLError drops the query and credentials from a failed request's
// URL.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery, u.User, u.Fragment = "", nil, ""
			return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
		}
		return &url.Error{Op: ue.Op, URL: "[unparsable URL]", Err: ue.Err}
	}
	return err
}

// secretForms lists the secret as it may come back: raw, and encoded as in
// the form it was posted in.
func secretForms(secret string) []string {
	forms := []string{secret}
	if q := url.QueryEscape(secret); q != secret {
		forms = append(forms, q)
	}
	return forms
}
