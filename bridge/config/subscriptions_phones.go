package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient"
)

// This file holds the keys of managed calendar subscriptions (a
// graphcalendar source's `subscriptions:`) and of phone number lookups (a
// tenant's `phone_lookup:`), with their defaults and checks.

// CalendarSubscriptions has the bridge keep a graphcalendar source's Graph
// subscriptions: one on each user's events, renewed before it expires.
type CalendarSubscriptions struct {
	// Users are the people whose calendars are watched, by UPN or object
	// id. (Groups are not supported: list the members.)
	Users []string `yaml:"users"`
	// NotificationURL is the source's webhook as Graph reaches it (https);
	// the source's public_url by default.
	NotificationURL string `yaml:"notification_url"`
	// LifecycleURL receives lifecycle notifications; NotificationURL by
	// default (the same webhook handles both).
	LifecycleURL string `yaml:"lifecycle_url"`
	// Lifetime is how far ahead each subscription's expiration is set
	// (at most 10080m, Graph's limit for calendar events); 72h by default.
	Lifetime time.Duration `yaml:"lifetime"`
	// RenewBefore is how long before expiring a subscription is renewed;
	// a third of Lifetime by default.
	RenewBefore time.Duration `yaml:"renew_before"`
	// Every is the time between checks; 1m by default.
	Every time.Duration `yaml:"every"`
}

// MaxSubscriptionLifetime is Graph's longest lifetime of a subscription on
// calendar events.
const MaxSubscriptionLifetime = 10080 * time.Minute

// PhoneLookup has a tenant resolve `tel:` and `ext:` keys that are not in
// the directory through Graph's users. Off by default.
type PhoneLookup struct {
	Enabled bool `yaml:"enabled"`
	// Properties are the user properties a tel: number is matched against,
	// in order: businessPhones and mobilePhone (both by default).
	Properties []string `yaml:"properties"`
	// ExtensionAttribute, such as extensionAttribute3, holds extensions:
	// ext: keys are matched against it (and not looked up without it).
	ExtensionAttribute string `yaml:"extension_attribute"`
}

// PhoneProperties are the properties phone_lookup.properties may name.
var PhoneProperties = []string{graphclient.BusinessPhones, graphclient.MobilePhone}

var extensionAttribute = regexp.MustCompile(`^extensionAttribute([1-9]|1[0-5])$`)

// subscriptionAndPhoneDefaults fills the defaults of both blocks.
func (c *Config) subscriptionAndPhoneDefaults() {
	for i := range c.Sources {
		s := c.Sources[i].Subscriptions
		if s == nil {
			continue
		}
		if s.NotificationURL == "" {
			s.NotificationURL = c.Sources[i].PublicURL
		}
		if s.Lifetime == 0 {
			s.Lifetime = 72 * time.Hour
		}
		if s.RenewBefore == 0 {
			s.RenewBefore = s.Lifetime / 3
		}
		if s.Every == 0 {
			s.Every = time.Minute
		}
	}
	for i := range c.Graph.Tenants {
		if p := &c.Graph.Tenants[i].PhoneLookup; p.Enabled && len(p.Properties) == 0 {
			p.Properties = slices.Clone(PhoneProperties)
		}
	}
}

// validateSubscriptionsAndPhones checks both blocks.
func (c *Config) validateSubscriptionsAndPhones(p *problems) {
	for i, src := range c.Sources {
		s := src.Subscriptions
		if s == nil {
			continue
		}
		path := fmt.Sprintf("sources[%d].subscriptions", i)
		p.check(src.Type == "graphcalendar", path, "only a graphcalendar source has subscriptions")
		p.check(len(src.Secret) <= 128, fmt.Sprintf("sources[%d].secret", i), "must be at most 128 characters: Graph's limit for a clientState")
		p.check(len(s.Users) > 0, path+".users", "required: the users whose calendars to watch")
		seen := map[string]bool{}
		for j, u := range s.Users {
			key := strings.ToLower(strings.TrimSpace(u))
			p.check(key != "" && !strings.ContainsAny(key, "/?#% ") && (strings.Contains(key, "@") || isGUID(key)), fmt.Sprintf("%s.users[%d]", path, j), "must be a UPN or an object id (got %q)", u)
			p.check(!seen[key], fmt.Sprintf("%s.users[%d]", path, j), "duplicate user %q", u)
			seen[key] = true
		}
		p.check(absoluteHTTP(s.NotificationURL), path+".notification_url", "required (or the source's public_url): the webhook's URL as Graph reaches it, such as https://bridge.example.com/v1/hooks/%s", src.Name)
		p.check(s.LifecycleURL == "" || absoluteHTTP(s.LifecycleURL), path+".lifecycle_url", "must be an absolute https URL")
		p.check(s.Lifetime > 0 && s.Lifetime <= MaxSubscriptionLifetime, path+".lifetime", "must be positive and at most 10080m, Graph's limit for calendar events (got %s)", s.Lifetime)
		p.check(s.RenewBefore > 0 && s.RenewBefore < s.Lifetime, path+".renew_before", "must be positive and less than lifetime (got %s)", s.RenewBefore)
		p.check(s.Every >= time.Second && s.Every < s.RenewBefore, path+".every", "must be at least 1s and less than renew_before (got %s)", s.Every)
	}
	for i, t := range c.Graph.Tenants {
		path := fmt.Sprintf("graph.tenants[%d].phone_lookup", i)
		for j, prop := range t.PhoneLookup.Properties {
			p.check(slices.Contains(PhoneProperties, prop), fmt.Sprintf("%s.properties[%d]", path, j), "must be one of %s (got %q)", strings.Join(PhoneProperties, ", "), prop)
		}
		a := t.PhoneLookup.ExtensionAttribute
		p.check(a == "" || extensionAttribute.MatchString(a), path+".extension_attribute", "must be extensionAttribute1 to extensionAttribute15 (got %q)", a)
	}
}

// absoluteHTTP tells whether s is an absolute http or https URL.
func absoluteHTTP(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

var guid = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func isGUID(s string) bool { return guid.MatchString(s) }
