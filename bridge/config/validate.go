package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/graphclient"
)

// SourceTypes are the adapter types a source may have.
var SourceTypes = []string{"generic", "twilio", "zoomphone", "webex", "ringcentral", "graphcalendar", "sipdialog", "caldav"}

// Clouds are the Microsoft clouds a tenant may name.
var Clouds = []string{"global", "usgov", "usgovdod", "china"}

// Priorities are the kinds of activity that presence.priority orders.
var Priorities = []string{"conference", "call", "meeting", "presence"}

// validate returns every problem in c, each naming its key's path.
func (c *Config) validate() []string {
	var p problems
	p.check(slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level), "log.level", "must be one of debug, info, warn, error (got %q)", c.Log.Level)
	p.check(slices.Contains([]string{"text", "json"}, c.Log.Format), "log.format", "must be text or json (got %q)", c.Log.Format)

	p.checkAddr("http.listen", c.HTTP.Listen)
	p.check(c.HTTP.BodyLimit >= 1024, "http.body_limit", "must be at least 1024 bytes")
	p.check(c.HTTP.ShutdownTimeout > 0, "http.shutdown_timeout", "must be positive")
	p.check(c.HTTP.MaxFutureSkew >= time.Second, "http.max_future_skew", "must be at least 1s")

	c.validateNATS(&p)
	c.validateGraph(&p)
	c.validatePresence(&p)
	c.validateSources(&p)
	c.validateSubscriptionsAndPhones(&p) // managed calendar subscriptions, phone lookups
	c.validateTwoWay(&p)                 // watch, lookup, outputs
	p.check(c.Worker.Lanes >= 1 && c.Worker.Lanes <= 1024, "worker.lanes", "must be between 1 and 1024 (got %d)", c.Worker.Lanes)
	p.check(c.Worker.LaneDepth >= 1, "worker.lane_depth", "must be positive (got %d)", c.Worker.LaneDepth)
	if c.Admin.Listen != "" {
		p.checkAddr("admin.listen", c.Admin.Listen)
		_, port, _ := net.SplitHostPort(c.Admin.Listen)
		p.check(c.Admin.Listen != c.HTTP.Listen || port == "0", "admin.listen", "must differ from http.listen (leave it empty to share it)")
	}
	p.check(c.Admin.History.MaxEntries >= 1 && c.Admin.History.MaxEntries <= 1000, "admin.history.max_entries", "must be between 1 and 1000 (got %d)", c.Admin.History.MaxEntries)
	p.check(c.Admin.History.MaxAge >= time.Minute, "admin.history.max_age", "must be at least 1m")
	p.check(c.Admin.History.MaxRate >= 1, "admin.history.max_rate", "must be at least 1 (got %d)", c.Admin.History.MaxRate)
	for key, target := range c.Directory {
		p.check(key != "" && target != "", "directory", "entries need a key and a user (%q: %q)", key, target)
	}
	return p.list
}

func (c *Config) validateNATS(p *problems) {
	n := c.NATS
	if n.Embedded {
		p.check(n.StoreDir != "", "nats.store_dir", "required when nats.embedded is true")
		p.check(len(n.URLs) == 0, "nats.urls", "must be empty when nats.embedded is true")
		if n.Listen != "" {
			p.checkAddr("nats.listen", n.Listen)
		}
	} else {
		p.check(len(n.URLs) > 0, "nats.urls", "required when nats.embedded is false")
		for i, u := range n.URLs {
			parsed, err := url.Parse(u)
			p.check(err == nil && parsed.Host != "", fmt.Sprintf("nats.urls[%d]", i), "must be a URL such as nats://host:4222 (got %q)", u)
		}
	}
	p.check(n.Stream != "" && !strings.ContainsAny(n.Stream, " .*>"), "nats.stream", "must be a stream name without spaces, dots or wildcards")
	p.check(n.DeadLetter != "" && !strings.ContainsAny(n.DeadLetter, " .*>") && n.DeadLetter != n.Stream, "nats.dead_letter_stream", "must be a stream name different from nats.stream")
	p.check(n.SubjectPrefix != "" && !strings.ContainsAny(n.SubjectPrefix, " *>"), "nats.subject_prefix", "must be a subject without wildcards")
	p.check(n.Consumer != "" && !strings.ContainsAny(n.Consumer, " .*>"), "nats.consumer", "must be a name without spaces, dots or wildcards")
	p.check(n.DuplicateWindow >= time.Minute, "nats.duplicate_window", "must be at least 1m, so that a sender's retry after a 503 is recognised")
	p.check(n.Replicas >= 1 && n.Replicas <= 5, "nats.replicas", "must be between 1 and 5")
	p.check(n.AckWait >= time.Second, "nats.ack_wait", "must be at least 1s")
	p.check(n.ConnectTimeout > 0, "nats.connect_timeout", "must be positive")
	p.check(n.PublishTimeout > 0, "nats.publish_timeout", "must be positive")
	p.check(n.StreamMaxBytes >= 4096, "nats.stream_max_bytes", "must be at least 4096 bytes")
	p.check(n.StreamMaxMsgs >= 0, "nats.stream_max_msgs", "must not be negative (0: no limit)")
	p.check(n.DeadLetterMaxBytes >= 4096, "nats.dead_letter_max_bytes", "must be at least 4096 bytes")
	p.check(n.DeadLetterMaxMsgs >= 0, "nats.dead_letter_max_msgs", "must not be negative (0: no limit)")
	p.check(n.DeadLetterMaxAge >= 0, "nats.dead_letter_max_age", "must not be negative (0: no limit)")
	p.check(n.MaxStore >= 0, "nats.max_store", "must not be negative (0: the server's default)")
	p.check(n.MaxStore == 0 || n.Embedded, "nats.max_store", "applies to the embedded server only; set max_file_store on external servers")
	if n.Embedded && n.MaxStore > 0 {
		p.check(n.StreamMaxBytes+n.DeadLetterMaxBytes <= n.MaxStore/2, "nats.max_store",
			"must be at least twice nats.stream_max_bytes + nats.dead_letter_max_bytes (%d bytes), leaving room for the state and lease buckets", 2*(n.StreamMaxBytes+n.DeadLetterMaxBytes))
	}
}

func (c *Config) validateGraph(p *problems) {
	g := c.Graph
	p.check(len(g.Tenants) > 0, "graph.tenants", "at least one tenant is required")
	seen := map[string]bool{}
	for i, t := range g.Tenants {
		path := fmt.Sprintf("graph.tenants[%d]", i)
		p.check(t.ID != "", path+".id", "required")
		p.check(!seen[t.ID], path+".id", "duplicate tenant %q", t.ID)
		seen[t.ID] = true
		p.check(slices.Contains(Clouds, t.Cloud), path+".cloud", "must be one of %s (got %q)", strings.Join(Clouds, ", "), t.Cloud)
		p.check((t.GraphURL == "") == (t.LoginURL == ""), path+".graph_url", "graph_url and login_url go together")
		for _, u := range []struct{ key, value string }{{"graph_url", t.GraphURL}, {"login_url", t.LoginURL}} {
			if u.value != "" {
				parsed, err := url.Parse(u.value)
				p.check(err == nil && (parsed.Scheme == "http" || parsed.Scheme == "https") && parsed.Host != "", path+"."+u.key, "must be an http(s) URL (got %q)", u.value)
			}
		}
		p.check(t.ClientID != "", path+".client_id", "required")
		secret, cert := given(t.ClientSecret, t.ClientSecretFile, t.ClientSecretEnv), given(t.ClientCertificate, t.ClientCertificateFile, t.ClientCertificateEnv)
		p.check(secret || cert, path+".client_secret", "required (inline, client_secret_file or client_secret_env), unless client_certificate is set")
		p.check(!(secret && cert), path+".client_certificate", "set a client secret or a client certificate, not both")
		if t.ClientCertificate != "" {
			err := graphclient.CheckCertificate([]byte(t.ClientCertificate))
			p.check(err == nil, path+".client_certificate", "%v", err)
		}
		p.check(t.Budget > 0, path+".budget", "must be positive")
		p.check(t.BudgetWindow >= time.Second, path+".budget_window", "must be at least 1s")
		p.check(t.LookupBudget > 0 && t.LookupBudget <= MaxLookupBudget, path+".lookup_budget", "must be 1 to %d", MaxLookupBudget)
		p.check(t.LookupBudgetWindow >= time.Second, path+".lookup_budget_window", "must be at least 1s")
	}
	p.check(g.Timeout > 0, "graph.timeout", "must be positive")
	p.check(g.UserCacheTTL >= 0, "graph.user_cache_ttl", "must not be negative")
	p.check(g.UnknownUserTTL >= 0, "graph.unknown_user_ttl", "must not be negative")
	p.check(g.Breaker.Failures > 0, "graph.breaker.failures", "must be positive")
	p.check(g.Breaker.OpenTimeout > 0, "graph.breaker.open_timeout", "must be positive")
	p.check(g.Retry.MinDelay > 0 && g.Retry.MaxDelay >= g.Retry.MinDelay, "graph.retry", "min_delay must be positive and max_delay at least min_delay")
	p.check(g.RefusalProbe.First > 0 && g.RefusalProbe.Max >= g.RefusalProbe.First, "graph.refusal_probe", "first must be positive and max at least first")
	if g.Emulator.Enabled {
		if err := g.Emulator.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				p.add("graph.emulator." + line)
			}
		}
	}
}

func (c *Config) validatePresence(p *problems) {
	pr := c.Presence
	p.check(pr.Expiration >= 5*time.Minute && pr.Expiration <= 4*time.Hour, "presence.expiration", "must be between 5m and 4h (Graph's PT5M to PT4H)")
	p.check(pr.MaxCallDuration >= time.Minute, "presence.max_call_duration", "must be at least 1m")
	p.check(pr.LeaseTTL >= time.Second, "presence.lease_ttl", "must be at least 1s")
	p.check(pr.MaxClaims >= 8 && pr.MaxClaims <= 4096, "presence.max_claims", "must be between 8 and 4096")
	p.check(pr.MaxStateSize >= 4<<10 && pr.MaxStateSize <= 512<<10, "presence.max_state_size", "must be between 4096 and 524288 bytes (4 KiB to 512 KiB)")
	p.check(pr.ObserveInterval == 0 || pr.ObserveInterval >= 100*time.Millisecond, "presence.observe_interval", "must be 0 (off) or at least 100ms")
	m := pr.Mapping
	for _, entry := range []struct{ key, value string }{
		{"call", m.Call}, {"conference_call", m.ConferenceCall}, {"ringing", m.Ringing}, {"meeting", m.Meeting},
	} {
		if entry.value == "" {
			continue
		}
		_, err := ParsePair(entry.value)
		p.check(err == nil, "presence.mapping."+entry.key, "%v", err)
	}
	for i, s := range m.MeetingShowAs {
		p.check(slices.Contains([]string{"free", "tentative", "busy", "oof", "workingElsewhere", "unknown"}, s), fmt.Sprintf("presence.mapping.meeting_show_as[%d]", i), "must be one of free, tentative, busy, oof, workingElsewhere, unknown (got %q)", s)
	}
	sm := pr.StatusMessages
	for _, entry := range []struct{ key, text, mapping string }{
		{"call", sm.Call, m.Call}, {"conference_call", sm.ConferenceCall, m.ConferenceCall}, {"ringing", sm.Ringing, m.Ringing}, {"meeting", sm.Meeting, m.Meeting},
	} {
		if entry.text == "" {
			continue
		}
		key := "presence.status_messages." + entry.key
		p.check(utf8.RuneCountInString(entry.text) <= MaxStatusMessage, key, "must be at most %d characters (got %d)", MaxStatusMessage, utf8.RuneCountInString(entry.text))
		p.check(strings.TrimSpace(entry.text) != "" && !strings.ContainsFunc(entry.text, unicode.IsControl), key, "must be one line of text, not only spaces")
		p.check(entry.mapping != "", key, "has no effect: presence.mapping.%s is empty, so this activity never sets a session", entry.key)
	}
	p.check(sm.Expiry >= 5*time.Minute && sm.Expiry <= 24*time.Hour, "presence.status_messages.expiry", "must be between 5m and 24h")
	seen := map[string]bool{}
	for i, kind := range pr.Priority {
		p.check(slices.Contains(Priorities, kind) && !seen[kind], fmt.Sprintf("presence.priority[%d]", i), "must be one of %s, each once (got %q)", strings.Join(Priorities, ", "), kind)
		seen[kind] = true
	}
}

func (c *Config) validateSources(p *problems) {
	names, paths := map[string]bool{}, map[string]bool{}
	tenants := map[string]bool{}
	for _, t := range c.Graph.Tenants {
		tenants[t.ID] = true
	}
	for i, s := range c.Sources {
		path := fmt.Sprintf("sources[%d]", i)
		p.check(adapters.ValidSourceName(s.Name), path+".name", "must be lower-case letters, digits, '-' or '_' (got %q)", s.Name)
		p.check(!names[s.Name], path+".name", "duplicate source %q", s.Name)
		names[s.Name] = true
		p.check(slices.Contains(SourceTypes, s.Type), path+".type", "must be one of %s (got %q)", strings.Join(SourceTypes, ", "), s.Type)
		validateConnectOut(p, path, s)
		if !ConnectsOut(s.Type) {
			p.check(strings.HasPrefix(s.Path, "/") && !strings.HasPrefix(s.Path, "/v1/events") && !strings.HasPrefix(s.Path, "/_"), path+".path", "must start with / and not clash with the bridge's own endpoints (got %q)", s.Path)
			p.check(!paths[s.Path], path+".path", "duplicate path %q", s.Path)
			paths[s.Path] = true
		}
		p.check(s.Tenant != "", path+".tenant", "required when more than one tenant is configured")
		if s.Tenant != "" {
			p.check(tenants[s.Tenant], path+".tenant", "unknown tenant %q", s.Tenant)
		}
		p.check(s.Lapse >= 0, path+".lapse", "must not be negative")
		p.check(strings.Trim(strings.TrimPrefix(s.Identity.CountryCode, "+"), "0123456789") == "" && len(s.Identity.CountryCode) <= 4, path+".identity.country_code", "must be a country calling code such as 1 or 49 (got %q)", s.Identity.CountryCode)
		switch s.Type {
		case "generic":
			p.check(given(s.Token, s.TokenFile, s.TokenEnv) || given(s.Secret, s.SecretFile, s.SecretEnv), path, "a generic source needs a token or a secret")
		case "twilio":
			p.check(given(s.Secret, s.SecretFile, s.SecretEnv), path+".secret", "required (the account's Auth Token)")
			p.check(s.PublicURL != "", path+".public_url", "required (the URL Twilio calls)")
		case "zoomphone", "webex", "ringcentral", "graphcalendar":
			p.check(given(s.Secret, s.SecretFile, s.SecretEnv), path+".secret", "required")
		}
	}
}

// MaxStatusMessage is the most characters a status message may have.
const MaxStatusMessage = 280

// ParsePair parses "Availability/Activity" and checks that Graph's
// setPresence accepts it.
func ParsePair(s string) (adapters.Pair, error) {
	availability, activity, ok := strings.Cut(s, "/")
	pair := adapters.Pair{Availability: availability, Activity: activity}
	if !ok || !pair.Settable() {
		names := make([]string, len(adapters.SettablePairs))
		for i, sp := range adapters.SettablePairs {
			names[i] = sp.String()
		}
		return pair, fmt.Errorf("%q is not a pair setPresence accepts (one of %s)", s, strings.Join(names, ", "))
	}
	return pair, nil
}

// given reports whether a secret was given in any of its forms; a form that
// could not be read is reported where it is resolved.
func given(inline, file, env string) bool { return inline != "" || file != "" || env != "" }

type problems struct{ list []string }

func (p *problems) add(s string) { p.list = append(p.list, s) }

func (p *problems) check(ok bool, path, format string, args ...any) {
	if !ok {
		p.add(path + ": " + fmt.Sprintf(format, args...))
	}
}

func (p *problems) checkAddr(path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	p.check(err == nil && port != "", path, "must be host:port (got %q)", addr)
}
