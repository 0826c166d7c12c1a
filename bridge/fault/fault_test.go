package fault_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

const (
	tenant = "contoso.example"
	user   = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
)

var busy = graphclient.Pair{Availability: "Busy", Activity: "InACall"}

// tc is one failure: a token endpoint and a Graph on an httptest server on
// 127.0.0.1 answer a real graphclient.Client, which makes one call; Of must
// sort what comes back.
type tc struct {
	name string
	// token answers token requests; nil issues a token.
	token http.HandlerFunc
	// graph answers Graph requests; nil answers 200 {}.
	graph func(cancel context.CancelFunc) http.HandlerFunc
	// config changes the client's configuration.
	config func(t *testing.T, cfg *graphclient.Config)
	// warm gets a token first, so that the call's failure is Graph's.
	warm bool
	// ctx bounds the call; context.Background when nil.
	ctx func() (context.Context, context.CancelFunc)
	// call is made instead of SetPresence.
	call func(ctx context.Context, c *graphclient.Client) error
	// err is classified instead of making a call.
	err error
	// wrap wraps the call's error as a stage would.
	wrap bool
	// is checks that the error is what the case says it is.
	is    func(error) bool
	class fault.Class
	after time.Duration
}

// status is Graph answering status with Graph's error body and, when not
// empty, a Retry-After header.
func status(code int, retryAfter string, class fault.Class, after time.Duration) tc {
	return tc{
		name: strconv.Itoa(code),
		graph: func(context.CancelFunc) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if retryAfter != "" {
					w.Header().Set("Retry-After", retryAfter)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(code)
				fmt.Fprintf(w, `{"error":{"code":"Code%d","message":"status %d","innerError":{"request-id":"r"}}}`, code, code)
			}
		},
		is:    graphStatus(code),
		class: class,
		after: after,
	}
}

// tokenStatus is the identity platform answering status with an OAuth
// error.
func tokenStatus(code int, oauthCode, retryAfter string, after time.Duration) tc {
	return tc{
		name: "token " + strconv.Itoa(code) + " " + oauthCode,
		token: func(w http.ResponseWriter, r *http.Request) {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"error":%q,"error_description":"AADSTS7000215: refused.","error_codes":[7000215],"trace_id":"t"}`, oauthCode)
		},
		is: func(err error) bool {
			var terr *graphclient.TokenError
			return errors.As(err, &terr) && terr.StatusCode == code && terr.Code == oauthCode
		},
		class: fault.Retry,
		after: after,
	}
}

// TestOf sorts every failure the bridge can meet when it calls Graph:
// every HTTP status Graph can answer with, the identity platform's
// refusals, no answer at all, and errors the stages make themselves.
func TestOf(t *testing.T) {
	cases := []tc{
		// 1xx are read past by net/http and 2xx are not errors. A 3xx
		// is not followed without a Location; Graph sends none.
		status(300, "", fault.Permanent, 0),
		status(301, "", fault.Permanent, 0),
		status(304, "", fault.Permanent, 0),
		status(400, "", fault.Permanent, 0),
		// Graph's 401 survives one token renewal: the tenant's token
		// is refused, not the change.
		status(401, "", fault.Refused, 0),
		status(403, "", fault.Refused, 0),
		status(404, "", fault.Permanent, 0),
		status(405, "", fault.Permanent, 0),
		status(406, "", fault.Permanent, 0),
		status(408, "", fault.Retry, 0),
		status(409, "", fault.Permanent, 0),
		status(410, "", fault.Permanent, 0),
		status(411, "", fault.Permanent, 0),
		status(412, "", fault.Permanent, 0),
		status(413, "", fault.Permanent, 0),
		status(415, "", fault.Permanent, 0),
		status(416, "", fault.Permanent, 0),
		status(422, "", fault.Permanent, 0),
		status(423, "", fault.Permanent, 0),
		status(424, "", fault.Permanent, 0),
		status(429, "2.128", fault.Throttled, 2128*time.Millisecond),
		status(429, "", fault.Throttled, 0),
		status(500, "", fault.Retry, 0),
		status(501, "", fault.Retry, 0),
		status(502, "", fault.Retry, 0),
		status(503, "7", fault.Retry, 7*time.Second),
		status(504, "", fault.Retry, 0),
		status(507, "", fault.Retry, 0),
		status(509, "", fault.Retry, 0),

		// The identity platform: no token is an outage, never a
		// reason to drop an event or to slow Graph's budget.
		tokenStatus(400, "invalid_client", "", 0),
		tokenStatus(400, "invalid_request", "", 0),
		tokenStatus(401, "invalid_client", "", 0),
		tokenStatus(429, "temporarily_unavailable", "3", 3*time.Second),
		tokenStatus(500, "temporarily_unavailable", "", 0),
		tokenStatus(503, "temporarily_unavailable", "7", 7*time.Second),
		{
			name: "token 200 without a token",
			token: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"token_type":"Bearer"}`)
			},
			is:    isTokenError(0),
			class: fault.Retry,
		},
		{
			name:   "token connection refused",
			config: func(t *testing.T, cfg *graphclient.Config) { cfg.LoginBaseURL = closedURL(t) },
			is: func(err error) bool {
				return isTokenError(0)(err) && errors.Is(err, syscall.ECONNREFUSED)
			},
			class: fault.Retry,
		},

		// No answer from Graph.
		{
			name:   "connection refused",
			config: func(t *testing.T, cfg *graphclient.Config) { cfg.GraphBaseURL = closedURL(t) + "/v1.0" },
			is:     network(syscall.ECONNREFUSED),
			class:  fault.Retry,
		},
		{
			name:   "DNS failure",
			config: func(t *testing.T, cfg *graphclient.Config) { cfg.GraphBaseURL = "http://graph.invalid/v1.0" },
			is: func(err error) bool {
				var dnsErr *net.DNSError
				return network(nil)(err) && errors.As(err, &dnsErr)
			},
			class: fault.Retry,
		},
		{
			name:   "client timeout",
			graph:  hang,
			config: func(t *testing.T, cfg *graphclient.Config) { cfg.Timeout = 100 * time.Millisecond },
			warm:   true,
			is:     network(nil),
			class:  fault.Retry,
		},
		{
			name:  "context deadline",
			graph: hang,
			warm:  true,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 100*time.Millisecond)
			},
			is:    network(context.DeadlineExceeded),
			class: fault.Retry,
		},
		{
			name: "context canceled",
			graph: func(cancel context.CancelFunc) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					io.Copy(io.Discard, r.Body)
					cancel() // the caller gives up while Graph works
					<-r.Context().Done()
				}
			},
			ctx:   func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			is:    network(context.Canceled),
			class: fault.Retry,
		},
		{
			name:  "EOF",
			graph: hangUp(false),
			is:    network(io.EOF),
			class: fault.Retry,
		},
		{
			name:  "connection reset",
			graph: hangUp(true),
			is:    network(nil), // a reset or an EOF, as the kernel reports it
			class: fault.Retry,
		},

		// Calls the client refuses before any request.
		{
			name:  "empty user id",
			call:  func(ctx context.Context, c *graphclient.Client) error { return c.SetPresence(ctx, "", busy, 0) },
			is:    func(err error) bool { return errors.Is(err, graphclient.ErrInvalidArgument) },
			class: fault.Permanent,
		},
		{
			name: "expiration out of range",
			call: func(ctx context.Context, c *graphclient.Client) error {
				return c.SetPresence(ctx, user, busy, time.Minute)
			},
			is:    func(err error) bool { return errors.Is(err, graphclient.ErrInvalidExpiration) },
			class: fault.Permanent,
		},
		{
			name:   "no presence in the cloud",
			config: func(t *testing.T, cfg *graphclient.Config) { cfg.Cloud, cfg.GraphBaseURL = "china", "" },
			is:     func(err error) bool { return errors.Is(err, graphclient.ErrPresenceUnavailable) },
			class:  fault.Permanent,
		},

		// Wrapped by a stage, and errors the stages make themselves.
		{
			name:  "Graph 429 wrapped by a stage",
			graph: status(429, "4", 0, 0).graph,
			wrap:  true,
			is:    graphStatus(429),
			class: fault.Throttled,
			after: 4 * time.Second,
		},
		{
			name:  "Graph 403 wrapped by a stage",
			graph: status(403, "", 0, 0).graph,
			wrap:  true,
			is:    graphStatus(403),
			class: fault.Refused,
		},
		{name: "permanently", err: fault.Permanently("unknown user", errors.New("no such user")), class: fault.Permanent},
		{name: "later", err: fmt.Errorf("stage: %w", fault.Later(5*time.Second, errors.New("busy"))), class: fault.Retry, after: 5 * time.Second},
		{name: "a stage's own class over Graph's", err: &fault.Error{Class: fault.Retry, Err: &graphclient.Error{StatusCode: 404}}, class: fault.Retry},
		{name: "unknown error", err: errors.New("something else"), class: fault.Retry},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err
			if err == nil {
				err = callGraph(t, tt)
			}
			if err == nil {
				t.Fatal("the call did not fail")
			}
			if tt.is != nil && !tt.is(err) {
				t.Fatalf("the call failed with %v (%#v), not the failure this case is about", err, err)
			}
			class, after := fault.Of(err)
			if class != tt.class || after != tt.after {
				t.Fatalf("Of(%v) = %s, %s; want %s, %s", err, class, after, tt.class, tt.after)
			}
		})
	}
}

// callGraph serves tt's token endpoint and Graph and makes tt's call.
func callGraph(t *testing.T, tt tc) error {
	t.Helper()
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if tt.ctx != nil {
		ctx, cancel = tt.ctx()
	}
	defer cancel()
	var failing atomic.Bool // Graph answers 200 until the warm-up is done
	failing.Store(!tt.warm)
	var graph http.HandlerFunc
	if tt.graph != nil {
		graph = tt.graph(cancel)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/"+tenant+"/oauth2/v2.0/token" && tt.token != nil:
			tt.token(w, r)
		case r.URL.Path == "/"+tenant+"/oauth2/v2.0/token":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"token_type":"Bearer","expires_in":3599,"access_token":"a-token"}`)
		case graph != nil && failing.Load():
			graph(w, r)
		default:
			io.WriteString(w, `{}`)
		}
	}))
	t.Cleanup(srv.Close)
	cfg := graphclient.Config{TenantID: tenant, ClientID: "app", ClientSecret: "secret",
		GraphBaseURL: srv.URL + "/v1.0", LoginBaseURL: srv.URL}
	if tt.config != nil {
		tt.config(t, &cfg)
	}
	c, err := graphclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	if tt.warm {
		// A short client timeout may end a token request on a busy
		// machine: try until one token is cached.
		testpoll.Until(t, "a token", func() bool { return c.ClearPresence(context.Background(), user) == nil })
		failing.Store(true)
	}
	call := func(ctx context.Context, c *graphclient.Client) error { return c.SetPresence(ctx, user, busy, 0) }
	if tt.call != nil {
		call = tt.call
	}
	err = call(ctx, c)
	if tt.wrap && err != nil {
		err = fmt.Errorf("writer: set presence: %w", err)
	}
	return err
}

// hang is a Graph that never answers; it lets go when the request ends.
func hang(context.CancelFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // net/http watches the connection once the body is read
		<-r.Context().Done()
	}
}

// hangUp is a Graph that closes the connection without answering; reset
// makes the close a TCP reset.
func hangUp(reset bool) func(context.CancelFunc) http.HandlerFunc {
	return func(context.CancelFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			if tcp, ok := conn.(*net.TCPConn); ok && reset {
				tcp.SetLinger(0)
			}
			conn.Close()
		}
	}
}

// closedURL is an address on 127.0.0.1 where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func graphStatus(code int) func(error) bool {
	return func(err error) bool {
		var gerr *graphclient.Error
		return errors.As(err, &gerr) && gerr.StatusCode == code
	}
}

func isTokenError(code int) func(error) bool {
	return func(err error) bool {
		var terr *graphclient.TokenError
		return errors.As(err, &terr) && terr.StatusCode == code
	}
}

// network checks for a *NetworkError caused by cause, any cause when nil.
func network(cause error) func(error) bool {
	return func(err error) bool {
		var nerr *graphclient.NetworkError
		return errors.As(err, &nerr) && (cause == nil || errors.Is(err, cause))
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[fault.Class]string{fault.Retry: "retry", fault.Throttled: "throttled", fault.Refused: "refused", fault.Permanent: "permanent", 9: "Class(9)"} {
		if c.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(c), c.String(), want)
		}
	}
}
