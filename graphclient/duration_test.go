package graphclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient"
)

func TestFormatDuration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{5 * time.Minute, "PT5M"},
		{15 * time.Minute, "PT15M"},
		{time.Hour, "PT1H"},
		{90 * time.Minute, "PT1H30M"},
		{4 * time.Hour, "PT4H"},
		{61 * time.Second, "PT1M1S"},
		{time.Hour + time.Second, "PT1H1S"},
		{5*time.Minute + 400*time.Millisecond, "PT5M"},
		{5*time.Minute + 500*time.Millisecond, "PT5M1S"},
		{0, "PT0S"},
		{-time.Minute, "PT0S"},
		{25 * time.Hour, "PT25H"},
	} {
		if got := graphclient.FormatDuration(tt.d); got != tt.want {
			t.Errorf("FormatDuration(%s) = %s, want %s", tt.d, got, tt.want)
		}
	}
}

// TestExpirationRange checks the PT5M..PT4H bounds as SetPresence applies
// them: inside goes to Graph, outside fails before any request.
func TestExpirationRange(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	var sent string
	f.setGraph(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ ExpirationDuration string }
		json.NewDecoder(r.Body).Decode(&body)
		sent = body.ExpirationDuration
	})
	for _, tt := range []struct {
		d    time.Duration
		want string // "" when refused
	}{
		{0, "PT5M"},
		{graphclient.MinExpiration, "PT5M"},
		{graphclient.MinExpiration - time.Nanosecond, ""},
		{graphclient.MaxExpiration, "PT4H"},
		{graphclient.MaxExpiration + time.Nanosecond, ""},
		{3*time.Hour + 59*time.Minute + 59*time.Second, "PT3H59M59S"},
		{-5 * time.Minute, ""},
	} {
		sent = ""
		err := c.SetPresence(context.Background(), aliceID, busy, tt.d)
		if tt.want == "" {
			if !errors.Is(err, graphclient.ErrInvalidExpiration) || sent != "" {
				t.Errorf("%s: got %v and sent %q, want a local refusal", tt.d, err, sent)
			}
			continue
		}
		if err != nil || sent != tt.want {
			t.Errorf("%s: got %v and sent %q, want %s", tt.d, err, sent, tt.want)
		}
	}
}

func TestCloudByName(t *testing.T) {
	for _, tt := range []struct {
		name, want, graph, login string
		presence                 bool
	}{
		{"", "global", "https://graph.microsoft.com", "https://login.microsoftonline.com", true},
		{"global", "global", "https://graph.microsoft.com", "https://login.microsoftonline.com", true},
		{" Global ", "global", "https://graph.microsoft.com", "https://login.microsoftonline.com", true},
		{"usgov", "usgov", "https://graph.microsoft.us", "https://login.microsoftonline.us", true},
		{"usgovdod", "usgovdod", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us", true},
		{"china", "china", "https://microsoftgraph.chinacloudapi.cn", "https://login.chinacloudapi.cn", false},
	} {
		c, err := graphclient.CloudByName(tt.name)
		if err != nil || c != (graphclient.Cloud{Name: tt.want, GraphURL: tt.graph, LoginURL: tt.login, Presence: tt.presence}) {
			t.Errorf("CloudByName(%q) = %+v, %v", tt.name, c, err)
		}
	}
	_, err := graphclient.CloudByName("mars")
	if !errors.Is(err, graphclient.ErrUnknownCloud) || err.Error() != `unknown cloud "mars" (one of global, usgov, usgovdod, china)` {
		t.Errorf("unknown cloud: %v", err)
	}
}
