package graph

import (
	"net/http/httptest"
	"testing"
)

func TestOperation(t *testing.T) {
	for _, tc := range []struct{ method, url, want string }{
		{"POST", "http://g/tenant-1/oauth2/v2.0/token", "token"},
		{"POST", "http://g/v1.0/users/6e4f/presence/setPresence", "setPresence"},
		{"POST", "http://g/v1.0/users/6e4f/presence/clearPresence", "clearPresence"},
		{"POST", "http://g/v1.0/users/6e4f/presence/setStatusMessage", "setStatusMessage"},
		{"POST", "http://g/v1.0/communications/getPresencesByUserId", "getPresencesByUserId"},
		{"GET", "http://g/v1.0/users/alice@contoso.example", "getUser"},
		{"GET", "http://g/v1.0/users/6e4f/events/AAMk", "calendar"},
		{"GET", "http://g/v1.0/users/6e4f/presence", "getPresence"},
		{"GET", "http://g/v1.0/something/else", "other"},
		{"GET", "http://g/", "other"},
	} {
		if got := Operation(httptest.NewRequest(tc.method, tc.url, nil)); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.method, tc.url, got, tc.want)
		}
	}
}

// FuzzOperation: any request path names one of the fixed operations,
// never a part of the path.
func FuzzOperation(f *testing.F) {
	for _, seed := range []string{"/", "", "/v1.0/users/", "/users/a/presence/setPresence", "//users//", "/x/oauth2/v2.0/token"} {
		f.Add(seed)
	}
	known := map[string]bool{"token": true, "setPresence": true, "clearPresence": true, "setStatusMessage": true, "getPresence": true,
		"getPresencesByUserId": true, "getUser": true, "calendar": true, "other": true}
	f.Fuzz(func(t *testing.T, path string) {
		req := httptest.NewRequest("GET", "http://g/", nil)
		req.URL.Path = path
		if op := Operation(req); !known[op] {
			t.Fatalf("path %q named operation %q", path, op)
		}
	})
}
