package graphclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/graphclient/graphlimits"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestSetPresenceSendsGraphsRequest(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	for _, tt := range []struct {
		expiration time.Duration
		iso        string
	}{{0, "PT5M"}, {5 * time.Minute, "PT5M"}, {15 * time.Minute, "PT15M"}, {90 * time.Minute, "PT1H30M"}, {4 * time.Hour, "PT4H"}} {
		if err := c.SetPresence(context.Background(), aliceID, graphclient.Pair{Availability: "Busy", Activity: "InACall"}, tt.expiration); err != nil {
			t.Fatalf("SetPresence(%s): %v", tt.expiration, err)
		}
		calls := f.graphCalls()
		got := calls[len(calls)-1]
		if got.Method != http.MethodPost || got.Path != "/v1.0/users/"+aliceID+"/presence/setPresence" {
			t.Fatalf("request %s %s", got.Method, got.Path)
		}
		var body map[string]string
		if err := json.Unmarshal([]byte(got.Body), &body); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"sessionId": clientID, "availability": "Busy", "activity": "InACall", "expirationDuration": tt.iso}
		if fmt.Sprint(body) != fmt.Sprint(want) {
			t.Errorf("expiration %s: body %v, want %v", tt.expiration, body, want)
		}
		checkHeaders(t, got, f.latestToken(), true)
	}
	calls := f.graphCalls()
	if calls[0].Header.Get("client-request-id") == calls[1].Header.Get("client-request-id") {
		t.Error("client-request-id must differ between requests")
	}
}

func checkHeaders(t *testing.T, got call, token string, post bool) {
	t.Helper()
	if a := got.Header.Get("Authorization"); a != "Bearer "+token {
		t.Errorf("Authorization %q, want Bearer %s", a, token)
	}
	if ct := got.Header.Get("Content-Type"); post && ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if id := got.Header.Get("client-request-id"); !uuidRE.MatchString(id) {
		t.Errorf("client-request-id %q is not a UUID", id)
	}
	if ua := got.Header.Get("User-Agent"); ua == "" || strings.HasPrefix(ua, "Go-http-client") {
		t.Errorf("User-Agent %q", ua)
	}
}

func TestSetPresenceRefusesLocally(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	busy := graphclient.Pair{Availability: "Busy", Activity: "InACall"}
	for _, tt := range []struct {
		name       string
		user       string
		pair       graphclient.Pair
		expiration time.Duration
		sentinel   error
	}{
		{"below PT5M", aliceID, busy, 5*time.Minute - time.Second, graphclient.ErrInvalidExpiration},
		{"above PT4H", aliceID, busy, 4*time.Hour + time.Second, graphclient.ErrInvalidExpiration},
		{"negative", aliceID, busy, -time.Minute, graphclient.ErrInvalidExpiration},
		{"one nanosecond", aliceID, busy, 1, graphclient.ErrInvalidExpiration},
		{"empty user", "", busy, 0, graphclient.ErrInvalidArgument},
		{"empty activity", aliceID, graphclient.Pair{Availability: "Busy"}, 0, graphclient.ErrInvalidArgument},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := c.SetPresence(context.Background(), tt.user, tt.pair, tt.expiration)
			if !errors.Is(err, tt.sentinel) || !errors.Is(err, graphclient.ErrInvalidArgument) {
				t.Fatalf("got %v, want %v", err, tt.sentinel)
			}
		})
	}
	if n, calls := f.tokenRequests(), len(f.graphCalls()); n != 0 || calls != 0 {
		t.Fatalf("a refused call reached the network: %d token requests, %d Graph calls", n, calls)
	}
}

func TestClearPresence(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	ctx := context.Background()
	if err := c.ClearPresence(ctx, aliceID); err != nil {
		t.Fatal(err)
	}
	got := f.graphCalls()[0]
	if got.Method != http.MethodPost || got.Path != "/v1.0/users/"+aliceID+"/presence/clearPresence" || got.Body != `{"sessionId":"`+clientID+`"}` {
		t.Fatalf("request %s %s %s", got.Method, got.Path, got.Body)
	}
	checkHeaders(t, got, f.latestToken(), true)

	f.setGraph(func(w http.ResponseWriter, r *http.Request) { graphError(w, 404, "NotFound", "Session not found.") })
	if err := c.ClearPresence(ctx, aliceID); err != nil {
		t.Fatalf("a 404 means already cleared, got %v", err)
	}
	f.setGraph(func(w http.ResponseWriter, r *http.Request) { graphError(w, 500, "generalException", "boom") })
	if err := c.ClearPresence(ctx, aliceID); !hasStatus(err, 500) {
		t.Fatalf("a 500 must not count as cleared: %v", err)
	}
}

func TestGetPresence(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	f.setGraph(respond(200, `{"@odata.context":"x","id":"`+aliceID+`","availability":"Busy","activity":"InACall",
		"sequenceNumber":"C123","outOfOfficeSettings":{"message":"Back Monday","isOutOfOffice":true},
		"statusMessage":{"message":{"content":"On site","contentType":"text"},"expiryDateTime":{"dateTime":"2026-11-24T00:00:00.0000000","timeZone":"UTC"},"publishedDateTime":"2026-11-23T09:00:00Z"}}`))
	p, err := c.GetPresence(context.Background(), aliceID)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != aliceID || p.Availability != "Busy" || p.Activity != "InACall" || p.SequenceNumber != "C123" || !p.OutOfOffice() ||
		p.OutOfOfficeSettings.Message != "Back Monday" || p.StatusMessage == nil || p.StatusMessage.Message.Content != "On site" {
		t.Fatalf("decoded %+v", p)
	}
	if exp, err := p.StatusMessage.ExpiryDateTime.Time(); err != nil || !exp.Equal(time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("expiry %s, %v", exp, err)
	}
	got := f.graphCalls()[0]
	if got.Method != http.MethodGet || got.Path != "/v1.0/users/"+aliceID+"/presence" {
		t.Fatalf("request %s %s", got.Method, got.Path)
	}
	checkHeaders(t, got, f.latestToken(), false)

	f.setGraph(respond(200, `{"id":"x","availability":"Offline","activity":"Offline","statusMessage":null,"outOfOfficeSettings":{"message":null,"isOutOfOffice":false}}`))
	if p, err := c.GetPresence(context.Background(), aliceID); err != nil || p.OutOfOffice() || p.StatusMessage != nil {
		t.Fatalf("nulls: %+v, %v", p, err)
	}
}

// presencesHandler answers getPresencesByUserId with one presence per id
// and records the chunk sizes.
func presencesHandler(t *testing.T, sizes *[]int, mu *sync.Mutex) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			IDs []string `json:"ids"`
		}
		if r.Method != http.MethodPost || r.URL.Path != "/v1.0/communications/getPresencesByUserId" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s %s %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			t.Error(err)
		}
		if len(in.IDs) > graphlimits.MaxIDsPerLookup {
			graphError(w, 400, "BadRequest", "too many ids")
			return
		}
		mu.Lock()
		*sizes = append(*sizes, len(in.IDs))
		mu.Unlock()
		out := struct {
			Value []graphclient.Presence `json:"value"`
		}{}
		for _, id := range in.IDs {
			out.Value = append(out.Value, graphclient.Presence{ID: id, Availability: "Available", Activity: "Available"})
		}
		json.NewEncoder(w).Encode(out)
	}
}

func TestGetPresencesByUserIDChunks(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	for _, tt := range []struct {
		ids    int
		chunks []int
	}{{0, nil}, {1, []int{1}}, {650, []int{650}}, {651, []int{650, 1}}, {1300, []int{650, 650}}, {1301, []int{650, 650, 1}}} {
		var sizes []int
		var mu sync.Mutex
		f.setGraph(presencesHandler(t, &sizes, &mu))
		ids := make([]string, tt.ids)
		for i := range ids {
			ids[i] = fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
		}
		got, err := c.GetPresencesByUserID(context.Background(), ids)
		if err != nil {
			t.Fatalf("%d ids: %v", tt.ids, err)
		}
		if fmt.Sprint(sizes) != fmt.Sprint(tt.chunks) {
			t.Errorf("%d ids went in chunks %v, want %v", tt.ids, sizes, tt.chunks)
		}
		if len(got) != tt.ids {
			t.Fatalf("%d ids: %d presences", tt.ids, len(got))
		}
		for i := range got {
			if got[i].ID != ids[i] {
				t.Fatalf("%d ids: result %d is %s, want %s (concatenated in order)", tt.ids, i, got[i].ID, ids[i])
			}
		}
	}
}

func TestGetPresencesByUserIDStopsAtFirstError(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	n := 0
	f.setGraph(func(w http.ResponseWriter, r *http.Request) {
		if n++; n == 2 {
			graphError(w, 429, "TooManyRequests", "Please retry again later.")
			return
		}
		io.WriteString(w, `{"value":[]}`)
	})
	got, err := c.GetPresencesByUserID(context.Background(), make([]string, 1300))
	if got != nil || !hasStatus(err, 429) || !strings.Contains(err.Error(), "ids 651 to 1300 of 1300") {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestGetUser(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	f.setGraph(respond(200, `{"id":"`+aliceID+`","userPrincipalName":"alice@contoso.example","mail":"alice@contoso.example","displayName":"Alice"}`))
	u, err := c.GetUser(context.Background(), "alice@contoso.example")
	if err != nil || u != (graphclient.User{ID: aliceID, UserPrincipalName: "alice@contoso.example", Mail: "alice@contoso.example", DisplayName: "Alice"}) {
		t.Fatalf("GetUser: %+v, %v", u, err)
	}
	if _, err := c.GetUser(context.Background(), "bob_fabrikam.com#EXT#@contoso.example"); err != nil {
		t.Fatal(err)
	}
	calls := f.graphCalls()
	for i, want := range []string{"/v1.0/users/alice@contoso.example", "/v1.0/users/bob_fabrikam.com%23EXT%23@contoso.example"} {
		if calls[i].Method != http.MethodGet || calls[i].Path != want || calls[i].RawQuery != "$select=id,userPrincipalName,mail,displayName" {
			t.Errorf("request %d: %s %s?%s, want %s", i, calls[i].Method, calls[i].Path, calls[i].RawQuery, want)
		}
	}
	f.setGraph(func(w http.ResponseWriter, r *http.Request) {
		graphError(w, 404, "Request_ResourceNotFound", "Resource 'nobody' does not exist.")
	})
	_, err = c.GetUser(context.Background(), "nobody@contoso.example")
	var gerr *graphclient.Error
	if !errors.As(err, &gerr) || gerr.StatusCode != 404 || !strings.Contains(err.Error(), "nobody@contoso.example") {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestGetEvent(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	f.setGraph(respond(200, `{"id":"AAMk=","start":{"dateTime":"2026-11-23T10:00:00.0000000","timeZone":"UTC"},
		"end":{"dateTime":"2026-11-23T11:30:00.0000000","timeZone":"UTC"},"showAs":"busy","isCancelled":false}`))
	e, err := c.GetEvent(context.Background(), aliceID, "AAMk=")
	if err != nil {
		t.Fatal(err)
	}
	want := graphclient.CalendarEvent{ID: "AAMk=", Start: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 23, 11, 30, 0, 0, time.UTC), ShowAs: "busy"}
	if e != want {
		t.Fatalf("event %+v, want %+v", e, want)
	}
	got := f.graphCalls()[0]
	if got.Path != "/v1.0/users/"+aliceID+"/events/AAMk=" || got.RawQuery != "$select=start,end,showAs,isCancelled" || got.Header.Get("Prefer") != `outlook.timezone="UTC"` {
		t.Fatalf("request %s?%s Prefer %q", got.Path, got.RawQuery, got.Header.Get("Prefer"))
	}
	// A Graph that ignored Prefer and answered in an IANA zone.
	f.setGraph(respond(200, `{"start":{"dateTime":"2026-11-23T10:00:00","timeZone":"Europe/Berlin"},"end":{"dateTime":"2026-11-23T11:00:00","timeZone":"Europe/Berlin"},"showAs":"tentative","isCancelled":true}`))
	e, err = c.GetEvent(context.Background(), aliceID, "ev1")
	if err != nil || !e.Start.Equal(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)) || !e.IsCancelled || e.ID != "ev1" {
		t.Fatalf("Berlin event: %+v, %v", e, err)
	}
	f.setGraph(respond(200, `{"start":{"dateTime":"2026-11-23T10:00:00","timeZone":"W. Europe Standard Time"},"end":{"dateTime":"2026-11-23T11:00:00","timeZone":"UTC"}}`))
	if _, err = c.GetEvent(context.Background(), aliceID, "ev1"); err == nil || !strings.Contains(err.Error(), "W. Europe Standard Time") {
		t.Fatalf("a Windows zone name must be an error: %v", err)
	}
}

func TestTokenIsCached(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Go(func() {
			errs <- c.SetPresence(context.Background(), aliceID, graphclient.Pair{Availability: "Busy", Activity: "InACall"}, 0)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := f.tokenRequests(); n != 1 {
		t.Fatalf("%d token requests for 40 calls, want 1", n)
	}
}

func TestTokenRenewedBeforeExpiry(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	get := func() {
		t.Helper()
		if _, err := c.GetPresence(context.Background(), aliceID); err != nil {
			t.Fatal(err)
		}
	}
	// A token with less than TokenEarlyExpiry left is never reused.
	f.mu.Lock()
	f.expiresIn = 30
	f.mu.Unlock()
	get()
	get()
	if n := f.tokenRequests(); n != 2 {
		t.Fatalf("%d token requests, want 2: a token expiring within a minute must be renewed", n)
	}
	// A token good for 61 s is reused for about one second.
	f.mu.Lock()
	f.expiresIn = 61
	f.mu.Unlock()
	get()
	get()
	if n := f.tokenRequests(); n != 3 {
		t.Fatalf("%d token requests, want 3", n)
	}
	testpoll.Until(t, "a fourth token request", func() bool { get(); return f.tokenRequests() > 3 })
	if n := f.tokenRequests(); n != 4 {
		t.Fatalf("%d token requests, want 4: the token was not renewed a minute before it expired", n)
	}
	if calls := f.graphCalls(); calls[len(calls)-1].Header.Get("Authorization") != "Bearer "+f.latestToken() {
		t.Fatal("the renewed token was not used")
	}
}

// strictGraph accepts only the newest token, like Graph after a revocation.
func strictGraph(f *fake) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.latestToken() {
			graphError(w, 401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
			return
		}
		io.WriteString(w, `{"id":"x","availability":"Busy","activity":"InACall"}`)
	}
}

func TestUnauthorizedRenewsTokenAndRetriesOnce(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	ctx := context.Background()
	if _, err := c.GetPresence(ctx, aliceID); err != nil {
		t.Fatal(err)
	}
	// The cached token is revoked: a newer one exists.
	f.mu.Lock()
	f.issued = append(f.issued, "revocation-marker")
	f.mu.Unlock()
	f.setGraph(strictGraph(f))
	if _, err := c.GetPresence(ctx, aliceID); err != nil {
		t.Fatalf("after a 401 the client must renew the token and retry: %v", err)
	}
	if n, calls := f.tokenRequests(), len(f.graphCalls()); n != 2 || calls != 3 {
		t.Fatalf("%d token requests and %d Graph calls, want 2 and 3", n, calls)
	}

	// A Graph that refuses every token: one retry, then a permanent 401.
	f.setGraph(func(w http.ResponseWriter, r *http.Request) {
		graphError(w, 401, "InvalidAuthenticationToken", "Access token validation failure.")
	})
	before := len(f.graphCalls())
	err := c.SetPresence(ctx, aliceID, graphclient.Pair{Availability: "Busy", Activity: "InACall"}, 0)
	var gerr *graphclient.Error
	if !errors.As(err, &gerr) || gerr.StatusCode != 401 {
		t.Fatalf("second 401: %v", err)
	}
	if calls := len(f.graphCalls()) - before; calls != 2 {
		t.Fatalf("%d Graph calls for one SetPresence, want 2 (one retry)", calls)
	}
	if n := f.tokenRequests(); n != 3 {
		t.Fatalf("%d token requests, want 3", n)
	}
}

func TestConcurrentUnauthorizedRenewsTokenOnce(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	if _, err := c.GetPresence(context.Background(), aliceID); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.issued = append(f.issued, "revocation-marker")
	f.mu.Unlock()
	f.setGraph(strictGraph(f))
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := c.GetPresence(context.Background(), aliceID); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := f.tokenRequests(); n != 2 {
		t.Fatalf("%d token requests, want 2: twenty 401s for one stale token renew it once", n)
	}
}

func TestTimeouts(t *testing.T) {
	f := newFake(t)
	cfg := f.config()
	cfg.Timeout = 100 * time.Millisecond
	c, err := graphclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	hang := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	f.setGraph(hang)
	start := time.Now()
	err = c.ClearPresence(context.Background(), aliceID)
	var nerr *graphclient.NetworkError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &nerr) {
		t.Fatalf("Graph past the timeout: %v", err)
	}

	// The caller's context ends first, while the token endpoint hangs.
	f.setToken(hang)
	cfg2 := f.config()
	cfg2.Timeout = time.Minute
	c2, err := graphclient.New(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = c2.ClearPresence(ctx, aliceID)
	var terr *graphclient.TokenError
	if !errors.As(err, &terr) || !errors.Is(err, context.DeadlineExceeded) || terr.StatusCode != 0 {
		t.Fatalf("token endpoint past the caller's deadline: %v", err)
	}
	// Far below the minute either client would otherwise wait, with room
	// for a busy machine.
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("timeouts took %s", d)
	}
}

func TestAnswersAreReadBounded(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	big := `{"id":"` + strings.Repeat("x", 2<<20) + `"}`
	f.setGraph(respond(200, big))
	if _, err := c.GetPresence(context.Background(), aliceID); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a 2 MiB answer: %v", err)
	}
	f.setGraph(respond(502, strings.Repeat("<html>Bad Gateway</html>\n", 100000)))
	err := c.SetPresence(context.Background(), aliceID, graphclient.Pair{Availability: "Busy", Activity: "InACall"}, 0)
	var gerr *graphclient.Error
	if !errors.As(err, &gerr) || gerr.StatusCode != 502 || !strings.HasPrefix(gerr.Message, "<html>Bad Gateway</html> <html>") || len(gerr.Message) > 520 {
		t.Fatalf("a large non-JSON error: %d bytes of message, %v", len(gerr.Message), gerr.StatusCode)
	}
	if gerr.ClientRequestID == "" || !uuidRE.MatchString(gerr.ClientRequestID) {
		t.Fatalf("the error should carry the client-request-id sent: %q", gerr.ClientRequestID)
	}
}

// roundTripFunc is an http.RoundTripper from a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func answer(status int, body string) *http.Response {
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body))}
}

// TestCloudEndpoints checks which hosts and scope each cloud uses, with a
// transport that answers in place of Microsoft.
func TestCloudEndpoints(t *testing.T) {
	for _, tt := range []struct{ cloud, token, scope, graph string }{
		{"", "https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/token", "https://graph.microsoft.com/.default", "https://graph.microsoft.com/v1.0/users/alice"},
		{"usgov", "https://login.microsoftonline.us/" + tenant + "/oauth2/v2.0/token", "https://graph.microsoft.us/.default", "https://graph.microsoft.us/v1.0/users/alice"},
		{"usgovdod", "https://login.microsoftonline.us/" + tenant + "/oauth2/v2.0/token", "https://dod-graph.microsoft.us/.default", "https://dod-graph.microsoft.us/v1.0/users/alice"},
		{"china", "https://login.chinacloudapi.cn/" + tenant + "/oauth2/v2.0/token", "https://microsoftgraph.chinacloudapi.cn/.default", "https://microsoftgraph.chinacloudapi.cn/v1.0/users/alice"},
	} {
		t.Run(tt.cloud, func(t *testing.T) {
			var seen []string
			hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				u := *r.URL
				u.RawQuery = ""
				seen = append(seen, u.String())
				if strings.HasSuffix(r.URL.Path, "/token") {
					r.ParseForm()
					if s := r.PostForm.Get("scope"); s != tt.scope {
						t.Errorf("scope %q, want %q", s, tt.scope)
					}
					return answer(200, `{"token_type":"Bearer","expires_in":3599,"access_token":"tok"}`), nil
				}
				return answer(200, `{"id":"alice"}`), nil
			})}
			c, err := graphclient.New(graphclient.Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret, Cloud: tt.cloud, HTTPClient: hc})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.GetUser(context.Background(), "alice"); err != nil {
				t.Fatal(err)
			}
			if len(seen) != 2 || seen[0] != tt.token || seen[1] != tt.graph {
				t.Fatalf("requests %v, want %s then %s", seen, tt.token, tt.graph)
			}
			err = c.ClearPresence(context.Background(), "alice")
			if tt.cloud == "china" {
				if !errors.Is(err, graphclient.ErrPresenceUnavailable) || len(seen) != 2 {
					t.Fatalf("presence in China: %v after %d requests", err, len(seen))
				}
				if _, err := c.GetPresencesByUserID(context.Background(), []string{"alice"}); !errors.Is(err, graphclient.ErrPresenceUnavailable) {
					t.Fatalf("presences in China: %v", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNewChecksConfig(t *testing.T) {
	ok := graphclient.Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret}
	for _, tt := range []struct {
		name string
		edit func(*graphclient.Config)
		want string
	}{
		{"no tenant", func(c *graphclient.Config) { c.TenantID = "" }, "missing tenant id"},
		{"nothing", func(c *graphclient.Config) { *c = graphclient.Config{} }, "missing tenant id, client id, client secret"},
		{"no secret", func(c *graphclient.Config) { c.ClientSecret = " " }, "missing client secret"},
		{"tenant with a slash", func(c *graphclient.Config) { c.TenantID = "a/b" }, "not a GUID or a domain"},
		{"unknown cloud", func(c *graphclient.Config) { c.Cloud = "mars" }, `unknown cloud "mars"`},
		{"relative graph URL", func(c *graphclient.Config) { c.GraphBaseURL = "graph.local/v1.0" }, "not an absolute http(s) URL"},
		{"graph URL with credentials", func(c *graphclient.Config) { c.GraphBaseURL = "https://u:pw@graph.local/v1.0" }, "must not carry credentials"},
		{"graph URL with the secret", func(c *graphclient.Config) { c.GraphBaseURL = "https://u:" + secret + "@graph.local/v1.0" }, "graph base URL"},
		{"login URL with a query", func(c *graphclient.Config) { c.LoginBaseURL = "https://login.local/?x=1" }, "must not carry"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			_, err := graphclient.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
	c, err := graphclient.New(graphclient.Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret, GraphBaseURL: "http://127.0.0.1:9/", LoginBaseURL: "http://127.0.0.1:9"})
	if err != nil || c.GraphURL() != "http://127.0.0.1:9/v1.0" || c.ClientID() != clientID || c.TenantID() != tenant {
		t.Fatalf("a Graph URL without a version gets /v1.0: %v, %v", c, err)
	}
}

func TestZeroClientAndDoneContext(t *testing.T) {
	var zero graphclient.Client
	if err := zero.ClearPresence(context.Background(), aliceID); !errors.Is(err, graphclient.ErrInvalidArgument) {
		t.Fatalf("zero Client: %v", err)
	}
	f := newFake(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := f.client(t).ClearPresence(ctx, aliceID)
	var nerr *graphclient.NetworkError
	if !errors.As(err, &nerr) || !errors.Is(err, context.Canceled) || f.tokenRequests() != 0 {
		t.Fatalf("done context: %v after %d token requests", err, f.tokenRequests())
	}
}

// hasStatus reports whether err is Graph's answer with status.
func hasStatus(err error, status int) bool {
	var gerr *graphclient.Error
	return errors.As(err, &gerr) && gerr.StatusCode == status
}

// TestGetPresencesByUserIDAnswers: the streamed decoding of
// getPresencesByUserId keeps what json.Unmarshal of the whole body did:
// other members skipped, empty answers empty, and truncated, oversized or
// trailing answers fail.
func TestGetPresencesByUserIDAnswers(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	big := `{"value":[` + strings.Repeat(`{"id":"`+aliceID+`","availability":"Busy","activity":"InACall"},`, 20000) + `{}]}`
	for _, tt := range []struct {
		name, body string
		want       string // the presences as id/availability/activity/sequence, or "error: <part of it>"
	}{
		{"plain", `{"value":[{"id":"a","availability":"Busy","activity":"InACall","sequenceNumber":"C1"},{"id":"b","availability":"Away","activity":"Away"}]}`, "[a/Busy/InACall/C1 b/Away/Away/]"},
		{"other members", `{"@odata.context":"x","value":[{"id":"a","availability":"Busy","activity":"InACall","extra":{"x":[1,2]}}],"next":null}`, "[a/Busy/InACall/]"},
		{"open values", `{"value":[{"id":"a","availability":["Busy","InACall"],"activity":7}]}`, "[a/Busy,InACall/7/]"},
		{"empty body", ``, "[]"},
		{"null", `null`, "[]"},
		{"null value", `{"value":null}`, "[]"},
		{"empty list", ` {"value":[]} ` + "\n", "[]"},
		{"truncated", `{"value":[{"id":"a","availability":"Busy"`, "error: decode answer"},
		{"truncated list", `{"value":[{"id":"a"}`, "error: decode answer"},
		{"trailing data", `{"value":[]} {}`, "error: data after the answer"},
		{"not an object", `[1]`, "error: decode answer"},
		{"value not a list", `{"value":{}}`, "error: decode answer"},
		{"too large", big, "error: larger than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.setGraph(respond(200, tt.body))
			got, err := c.GetPresencesByUserID(context.Background(), []string{"a", "b"})
			if err != nil {
				if !strings.HasPrefix(tt.want, "error: ") || !strings.Contains(err.Error(), strings.TrimPrefix(tt.want, "error: ")) {
					t.Fatalf("error %v, want %s", err, tt.want)
				}
				return
			}
			var s []string
			for _, p := range got {
				s = append(s, p.ID+"/"+p.Availability+"/"+p.Activity+"/"+p.SequenceNumber)
			}
			if fmt.Sprintf("%v", s) != tt.want {
				t.Fatalf("got %v, want %s", s, tt.want)
			}
		})
	}
}

// TestGetPresencesByUserIDBrokenAnswer: a connection that breaks in the
// middle of an answer is a network error, as it was when the body was
// read whole.
func TestGetPresencesByUserIDBrokenAnswer(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	f.setGraph(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		io.WriteString(w, `{"value":[{"id":"a","availability":"Busy","activity":"InACall"},`)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection closes short of its length
	})
	_, err := c.GetPresencesByUserID(context.Background(), []string{"a"})
	var nerr *graphclient.NetworkError
	if !errors.As(err, &nerr) {
		t.Fatalf("got %T %v, want a *NetworkError", err, err)
	}
}

// TestGetPresencesByUserIDStreams: an answer is decoded as it arrives,
// so reading one (the fake server's side included) allocates less than
// the answer's size when most of it is not kept (here a member of each
// presence the client ignores); reading the whole body first allocates
// more than its size by itself.
func TestGetPresencesByUserIDStreams(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	var b strings.Builder
	b.WriteString(`{"value":[`)
	ids := make([]string, graphlimits.MaxIDsPerLookup)
	for i := range ids {
		ids[i] = fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%q,"availability":"Busy","activity":"InACall","ignored":"%s"}`, ids[i], strings.Repeat("x", 1200))
	}
	b.WriteString(`]}`)
	body := b.String()
	f.setGraph(respond(200, body))
	if _, err := c.GetPresencesByUserID(context.Background(), ids); err != nil { // warm: connection, token
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got, err := c.GetPresencesByUserID(context.Background(), ids)
	runtime.ReadMemStats(&after)
	if err != nil || len(got) != len(ids) {
		t.Fatalf("%d presences, %v", len(got), err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(len(body)) {
		t.Fatalf("reading an answer of %d bytes allocated %d bytes, want less", len(body), alloc)
	}
}
