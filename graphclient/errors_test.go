package graphclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient"
)

var busy = graphclient.Pair{Availability: "Busy", Activity: "InACall"}

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

// TestGraphErrors checks that each error status comes back as an *Error
// with Graph's status, code, message and request ids. bridge/fault decides
// what to do about them.
func TestGraphErrors(t *testing.T) {
	for _, tt := range []struct {
		status int
		code   string
	}{
		{200, ""},
		{400, "InvalidArgument"},
		{401, "InvalidAuthenticationToken"},
		{403, "Forbidden"},
		{404, "NotFound"},
		{408, "RequestTimeout"},
		{409, "Conflict"},
		{429, "TooManyRequests"},
		{500, "generalException"},
		{502, "BadGateway"},
		{503, "serviceNotAvailable"},
		{504, "GatewayTimeout"},
	} {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			f := newFake(t)
			c := f.client(t)
			f.setGraph(func(w http.ResponseWriter, r *http.Request) {
				if tt.status == 200 {
					return
				}
				graphError(w, tt.status, tt.code, "message for "+tt.code)
			})
			err := c.SetPresence(context.Background(), aliceID, busy, 0)
			if tt.status == 200 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var gerr *graphclient.Error
			if !errors.As(err, &gerr) {
				t.Fatalf("want a *graphclient.Error, got %#v", err)
			}
			want := graphclient.Error{Op: "set presence for " + aliceID, StatusCode: tt.status, Code: tt.code, Message: "message for " + tt.code,
				RequestID: "req-" + tt.code, ClientRequestID: "crid-" + tt.code}
			if *gerr != want {
				t.Fatalf("error %+v\nwant %+v", *gerr, want)
			}
			if s := err.Error(); !strings.Contains(s, aliceID) || !strings.Contains(s, fmt.Sprint(tt.status)) || !strings.Contains(s, tt.code) || !strings.Contains(s, "req-"+tt.code) {
				t.Fatalf("error text %q lacks the user, status, code or request id", s)
			}
		})
	}
}

// TestNoAnswer checks that a request that got no answer is a
// *NetworkError that keeps its cause.
func TestNoAnswer(t *testing.T) {
	f := newFake(t)
	down := f.config()
	down.GraphBaseURL = closedURL(t) + "/v1.0"
	c, err := graphclient.New(down)
	if err != nil {
		t.Fatal(err)
	}
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	good := f.client(t)
	if err := good.ClearPresence(context.Background(), aliceID); err != nil { // caches a token
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		err   error
		cause error
	}{
		{"connection refused", c.ClearPresence(context.Background(), aliceID), syscall.ECONNREFUSED},
		{"context deadline", good.ClearPresence(expired, aliceID), context.DeadlineExceeded},
		{"context cancelled", good.ClearPresence(cancelled, aliceID), context.Canceled},
	} {
		var nerr *graphclient.NetworkError
		if !errors.As(tt.err, &nerr) || !errors.Is(tt.err, tt.cause) || graphclient.RetryAfter(tt.err) != 0 {
			t.Errorf("%s: %v, want a *NetworkError caused by %v", tt.name, tt.err, tt.cause)
		}
	}
	if err := c.ClearPresence(context.Background(), aliceID); !strings.Contains(err.Error(), "clear presence for "+aliceID) {
		t.Fatalf("network error: %v", err)
	}
}

// TestTokenEndpointErrors checks that the identity platform's refusals
// come back as a *TokenError with its status, OAuth code and Retry-After.
func TestTokenEndpointErrors(t *testing.T) {
	for _, tt := range []struct {
		name       string
		handler    http.HandlerFunc
		status     int
		code       string
		retryAfter time.Duration
		text       []string
	}{
		{"wrong secret", func(w http.ResponseWriter, r *http.Request) {
			identityError(w, 401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		}, 401, "invalid_client", 0, []string{"tenant " + tenant, "401", "invalid_client", "AADSTS7000215", "trace id 0a1b-trace"}},
		{"unknown tenant", func(w http.ResponseWriter, r *http.Request) {
			identityError(w, 400, "invalid_request", "AADSTS90002: Tenant 'contoso.example' not found.")
		}, 400, "invalid_request", 0, []string{"AADSTS90002"}},
		{"500", func(w http.ResponseWriter, r *http.Request) {
			identityError(w, 500, "temporarily_unavailable", "AADSTS50001: try again")
		}, 500, "temporarily_unavailable", 0, []string{"500"}},
		{"503 with Retry-After", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(503)
			io.WriteString(w, "<html>down</html>")
		}, 503, "", 7 * time.Second, []string{"503"}},
		{"429", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "2.5")
			identityError(w, 429, "temporarily_unavailable", "AADSTS50196: loop detected")
		}, 429, "temporarily_unavailable", 2500 * time.Millisecond, []string{"429"}},
		{"200 without a token", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"token_type":"Bearer"}`)
		}, 0, "", 0, []string{"missing access_token"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.setToken(tt.handler)
			err := f.client(t).SetPresence(context.Background(), aliceID, busy, 0)
			var terr *graphclient.TokenError
			if !errors.As(err, &terr) {
				t.Fatalf("want a *graphclient.TokenError, got %#v", err)
			}
			if terr.StatusCode != tt.status || terr.Code != tt.code {
				t.Fatalf("status %d code %q, want %d %q", terr.StatusCode, terr.Code, tt.status, tt.code)
			}
			if got := graphclient.RetryAfter(err); got != tt.retryAfter {
				t.Fatalf("RetryAfter = %s, want %s", got, tt.retryAfter)
			}
			for _, s := range append(tt.text, "set presence for "+aliceID) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q lacks %q", err, s)
				}
			}
			if len(f.graphCalls()) != 0 {
				t.Fatal("Graph was called without a token")
			}
		})
	}
	// The token endpoint does not answer.
	f := newFake(t)
	cfg := f.config()
	cfg.LoginBaseURL = closedURL(t)
	c, err := graphclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = c.SetPresence(context.Background(), aliceID, busy, 0)
	var terr *graphclient.TokenError
	if !errors.As(err, &terr) || terr.StatusCode != 0 || !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("token endpoint down: %v", err)
	}
}

func TestRetryAfterFromGraph(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, tt := range []struct {
		status  int
		header  string
		wantMin time.Duration
		wantMax time.Duration
	}{
		{429, "2.128", 2128 * time.Millisecond, 2128 * time.Millisecond},
		{429, "3", 3 * time.Second, 3 * time.Second},
		{429, "", 0, 0},
		{503, date, 88 * time.Second, 90 * time.Second},
		{503, "soon", 0, 0},
	} {
		f.setGraph(func(w http.ResponseWriter, r *http.Request) {
			if tt.header != "" {
				w.Header().Set("Retry-After", tt.header)
			}
			graphError(w, tt.status, "TooManyRequests", "Please retry again later.")
		})
		err := c.SetPresence(context.Background(), aliceID, busy, 0)
		if got := graphclient.RetryAfter(err); got < tt.wantMin || got > tt.wantMax {
			t.Errorf("%d Retry-After %q: RetryAfter = %s, want %s..%s", tt.status, tt.header, got, tt.wantMin, tt.wantMax)
		}
	}
	if graphclient.RetryAfter(nil) != 0 || graphclient.RetryAfter(errors.New("x")) != 0 {
		t.Error("RetryAfter of a non-Graph error must be 0")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 3 ", 3 * time.Second},
		{"0", 0},
		{"2.128", 2128 * time.Millisecond},
		{"0.5", 500 * time.Millisecond},
		{"120", 2 * time.Minute},
		{"999999", graphclient.MaxRetryAfter},
		{"1e3", 0},
		{"-1", 0},
		{"+1", 0},
		{"1.", 0},
		{".5", 0},
		{"1.2.3", 0},
		{"NaN", 0},
		{"Inf", 0},
		{"0x10", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(90 * time.Second).Format(time.RFC850), 90 * time.Second},
		{now.Add(90 * time.Second).Format(time.ANSIC), 90 * time.Second},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), graphclient.MaxRetryAfter},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Format(http.TimeFormat), 0},
	} {
		if got := graphclient.ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestErrorBodies(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	for _, tt := range []struct {
		name, body     string
		code, message  string
		requestID      string
		clientRequest  bool // the id sent, when Graph did not echo one
		headerRequest  bool
		statusInString string
	}{
		{"graph", `{"error":{"code":"Forbidden","message":"","innerError":{"date":"2026-11-23T10:00:00","request-id":"r1","client-request-id":"c1"}}}`, "Forbidden", "", "r1", false, false, "403 Forbidden"},
		{"no inner error", `{"error":{"code":"InvalidArgument","message":"The provided [ExpirationDuration] is out of range."}}`, "InvalidArgument", "The provided [ExpirationDuration] is out of range.", "hdr", true, true, "403 InvalidArgument"},
		{"html", "<html>\r\n<body>Forbidden</body>\r\n</html>", "", "<html> <body>Forbidden</body> </html>", "hdr", true, true, "403 Forbidden: <html>"},
		{"empty", "", "", "", "hdr", true, true, "403 Forbidden"},
		{"other JSON", `{"message":"nope"}`, "", `{"message":"nope"}`, "hdr", true, true, "403 Forbidden"},
		{"invalid UTF-8 and controls", "bad \xff\x00\x1b[31m byte", "", "bad \uFFFD [31m byte", "hdr", true, true, "403"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.setGraph(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("request-id", "hdr")
				w.WriteHeader(403)
				io.WriteString(w, tt.body)
			})
			err := c.ClearPresence(context.Background(), aliceID)
			var gerr *graphclient.Error
			if !errors.As(err, &gerr) {
				t.Fatal(err)
			}
			if gerr.StatusCode != 403 || gerr.Code != tt.code || gerr.Message != tt.message || gerr.RequestID != tt.requestID {
				t.Fatalf("parsed %+v", *gerr)
			}
			sent := f.graphCalls()[len(f.graphCalls())-1].Header.Get("client-request-id")
			if tt.clientRequest && gerr.ClientRequestID != sent {
				t.Fatalf("ClientRequestID %q, want the one sent %q", gerr.ClientRequestID, sent)
			}
			if !strings.Contains(err.Error(), tt.statusInString) {
				t.Fatalf("%q lacks %q", err, tt.statusInString)
			}
		})
	}
}

// TestSecretsNeverLeak drives every error path, with fakes that echo the
// secret and the token back, and checks that neither appears in an error,
// in fmt's verbs, or in slog's output.
func TestSecretsNeverLeak(t *testing.T) {
	f := newFake(t)
	ctx := context.Background()
	var logs bytes.Buffer
	text := slog.New(slog.NewTextHandler(&logs, nil))
	js := slog.New(slog.NewJSONHandler(&logs, nil))
	var errs []error
	record := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: want an error", what)
		}
		errs = append(errs, err)
	}
	echo := func(status int) http.HandlerFunc { // Graph echoing the request's token
		return func(w http.ResponseWriter, r *http.Request) {
			auth := r.Header.Get("Authorization")
			graphError(w, status, "Echo"+auth, "you sent "+auth+" and "+secret)
		}
	}

	// A wrong secret, with an identity platform that echoes what it got.
	wrongCfg := f.config()
	wrongCfg.ClientSecret = "wrong-" + secret
	wrong, err := graphclient.New(wrongCfg)
	if err != nil {
		t.Fatal(err)
	}
	f.setToken(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		identityError(w, 401, "invalid_client", "AADSTS7000215: Invalid client secret provided: "+r.PostForm.Get("client_secret"))
	})
	record("wrong secret", wrong.SetPresence(ctx, aliceID, busy, 0))
	if !strings.Contains(errs[0].Error(), "AADSTS7000215") || !strings.Contains(errs[0].Error(), "invalid_client") {
		t.Errorf("a wrong secret should say invalid_client and AADSTS7000215: %v", errs[0])
	}
	// A token endpoint that answers 500 with the raw form, then plain text.
	f.setToken(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(500)
		w.Write(body)
	})
	record("token 500", f.client(t).ClearPresence(ctx, aliceID))
	f.setToken(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(400)
		io.WriteString(w, "error=invalid_client&error_description="+url.QueryEscape("AADSTS7000215 bad "+r.PostForm.Get("client_secret")))
	})
	record("token 400 form", f.client(t).ClearPresence(ctx, aliceID))
	// The token endpoint is down.
	downCfg := f.config()
	downCfg.LoginBaseURL = closedURL(t)
	down, _ := graphclient.New(downCfg)
	record("token endpoint down", down.SetPresence(ctx, aliceID, busy, 0))
	// Graph errors that echo the token and the secret.
	f.setToken(nil)
	good := f.client(t)
	for _, status := range []int{401, 403, 500} {
		f.setGraph(echo(status))
		record(fmt.Sprint("graph ", status), good.SetPresence(ctx, aliceID, busy, 0))
	}
	f.setGraph(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(502)
		io.WriteString(w, "proxy saw "+r.Header.Get("Authorization")+"\n"+secret)
	})
	record("graph 502 text", good.ClearPresence(ctx, aliceID))
	// Graph is down.
	graphDown := f.config()
	graphDown.GraphBaseURL = closedURL(t) + "/v1.0"
	gd, _ := graphclient.New(graphDown)
	_, err = gd.GetPresence(ctx, aliceID)
	record("graph down", err)
	if f.latestToken() == "" {
		t.Fatal("no token was issued; the test checks nothing")
	}

	cfg := f.config()
	for _, h := range []*slog.Logger{text, js} {
		h.Info("configured", "graph", cfg, "client", good, "cfgptr", &cfg)
		for _, err := range errs {
			h.Error("graph call failed", "err", err)
		}
	}
	for _, v := range []any{cfg, &cfg, good, *good} {
		fmt.Fprintf(&logs, "%v %+v %s %#v\n", v, v, v, v)
	}
	for _, err := range errs {
		fmt.Fprintf(&logs, "%v %+v %s %#v\n", err, err, err, err)
		var terr *graphclient.TokenError
		if errors.As(err, &terr) {
			fmt.Fprintf(&logs, "%v %+v %#v\n", *terr, *terr, *terr)
		}
		var gerr *graphclient.Error
		if errors.As(err, &gerr) {
			fmt.Fprintf(&logs, "%v %+v %#v\n", *gerr, *gerr, *gerr)
		}
		for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
			fmt.Fprintf(&logs, "%v\n", e)
		}
	}
	out := logs.String()
	for _, s := range []string{secret, url.QueryEscape(secret), tokenPrefix} {
		if strings.Contains(out, s) {
			t.Fatalf("%q leaked into errors or logs:\n%s", s, out)
		}
	}
	if !strings.Contains(out, "[redacted]") {
		t.Fatalf("expected redaction markers:\n%s", out)
	}
}
