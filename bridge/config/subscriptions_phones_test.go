package config

import (
	"strings"
	"testing"
	"time"
)

const calendarSource = `
graph:
  tenants:
    - {id: contoso.example, client_id: app, client_secret: s3cret}
sources:
  - name: calendar
    type: graphcalendar
    secret: client-state
    public_url: https://bridge.example.com/v1/hooks/calendar
`

func TestCalendarSubscriptionDefaults(t *testing.T) {
	cfg, err := Parse([]byte(calendarSource+"    subscriptions: {users: [alice@contoso.example, fa8bf3dc-eca7-46b7-bad1-db199b62afc3]}\n"), ".")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Sources[0].Subscriptions
	if s.NotificationURL != "https://bridge.example.com/v1/hooks/calendar" || s.Lifetime != 72*time.Hour || s.RenewBefore != 24*time.Hour || s.Every != time.Minute {
		t.Fatalf("defaults: %+v", s)
	}
	cfg, err = Parse([]byte(minimal), ".")
	if err != nil || cfg.Sources[0].Subscriptions != nil || cfg.Graph.Tenants[0].PhoneLookup.Enabled {
		t.Fatalf("off by default: %v %+v", err, cfg)
	}
	cfg, err = Parse([]byte(strings.Replace(minimal, "client_secret: s3cret}", "client_secret: s3cret, phone_lookup: {enabled: true}}", 1)), ".")
	if err != nil || strings.Join(cfg.Graph.Tenants[0].PhoneLookup.Properties, ",") != "businessPhones,mobilePhone" {
		t.Fatalf("phone lookup defaults: %v %+v", err, cfg.Graph.Tenants[0].PhoneLookup)
	}
}

func TestSubscriptionAndPhoneErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"no users", calendarSource + "    subscriptions: {users: []}\n", "sources[0].subscriptions.users: required"},
		{"bad user", calendarSource + "    subscriptions: {users: [alice]}\n", "sources[0].subscriptions.users[0]: must be a UPN or an object id"},
		{"duplicate user", calendarSource + "    subscriptions: {users: [a@x.example, A@x.example]}\n", "sources[0].subscriptions.users[1]: duplicate"},
		{"too long", calendarSource + "    subscriptions: {users: [a@x.example], lifetime: 170h}\n", "sources[0].subscriptions.lifetime: must be positive and at most 10080m"},
		{"renew after expiry", calendarSource + "    subscriptions: {users: [a@x.example], lifetime: 1h, renew_before: 2h}\n", "sources[0].subscriptions.renew_before"},
		{"no url", strings.Replace(calendarSource, "    public_url: https://bridge.example.com/v1/hooks/calendar\n", "", 1) + "    subscriptions: {users: [a@x.example]}\n", "sources[0].subscriptions.notification_url: required"},
		{"wrong type", strings.Replace(minimal, "token: t0ken}", "token: t0ken, subscriptions: {users: [a@x.example], notification_url: \"https://b.example/x\"}}", 1), "sources[0].subscriptions: only a graphcalendar source"},
		{"unknown key", calendarSource + "    subscriptions: {group: staff}\n", "group"},
		{"phone property", strings.Replace(minimal, "s3cret}", "s3cret, phone_lookup: {enabled: true, properties: [faxNumber]}}", 1), "graph.tenants[0].phone_lookup.properties[0]: must be one of"},
		{"extension attribute", strings.Replace(minimal, "s3cret}", "s3cret, phone_lookup: {enabled: true, extension_attribute: extensionAttribute16}}", 1), "graph.tenants[0].phone_lookup.extension_attribute"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), ".")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want %q, got %v", c.want, err)
			}
		})
	}
}
