package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/outputs"
	"github.com/presence-bridge/presence-bridge/outputs/catalog"
	natsout "github.com/presence-bridge/presence-bridge/outputs/nats"
	sipout "github.com/presence-bridge/presence-bridge/outputs/sip"
	"github.com/presence-bridge/presence-bridge/outputs/webhook"
)

// This file holds the keys of two-way presence: `watch:` (and a tenant's
// override of it), `lookup:` and `outputs:`, with their defaults and
// checks.

// Watch sets how the bridge watches Teams presence in each tenant.
type Watch struct {
	// Enabled publishes Teams changes to the outputs and the lookup API;
	// off by default.
	Enabled bool `yaml:"enabled"`
	// Interval is about how often each watched person is read.
	Interval time.Duration `yaml:"interval"`
	// Users is who is watched: directory, all, or group:<object id>.
	Users string `yaml:"users"`
	// ReadBudget getPresencesByUserId requests per ReadBudgetWindow, per
	// tenant, apart from the write budget.
	ReadBudget       int           `yaml:"read_budget"`
	ReadBudgetWindow time.Duration `yaml:"read_budget_window"`
}

// WatchOverride is a tenant's `watch:`: the keys it sets replace the
// top-level ones for that tenant.
type WatchOverride struct {
	Enabled          *bool          `yaml:"enabled"`
	Interval         *time.Duration `yaml:"interval"`
	Users            *string        `yaml:"users"`
	ReadBudget       *int           `yaml:"read_budget"`
	ReadBudgetWindow *time.Duration `yaml:"read_budget_window"`
}

// Graph's published read limit: getPresencesByUserId requests per window
// per application per tenant. A read budget may not go faster.
const (
	GraphReadRequests = 1500
	GraphReadWindow   = 30 * time.Second
)

// DefaultWatch is the top-level watch when the file leaves it out.
func DefaultWatch() Watch {
	return Watch{Interval: 2 * time.Second, Users: "directory", ReadBudget: 1000, ReadBudgetWindow: 30 * time.Second}
}

// WatchOf returns the watch of the tenant id: the top-level one with the
// tenant's override merged over it.
func (c *Config) WatchOf(tenant string) Watch {
	w := c.Watch
	for _, t := range c.Graph.Tenants {
		if t.ID == tenant {
			w = w.merge(t.Watch)
		}
	}
	return w
}

func (w Watch) merge(o *WatchOverride) Watch {
	if o == nil {
		return w
	}
	if o.Enabled != nil {
		w.Enabled = *o.Enabled
	}
	if o.Interval != nil {
		w.Interval = *o.Interval
	}
	if o.Users != nil {
		w.Users = *o.Users
	}
	if o.ReadBudget != nil {
		w.ReadBudget = *o.ReadBudget
	}
	if o.ReadBudgetWindow != nil {
		w.ReadBudgetWindow = *o.ReadBudgetWindow
	}
	return w
}

// Group returns the group's object id of `users: group:<id>`.
func (w Watch) Group() (string, bool) {
	return strings.CutPrefix(w.Users, "group:")
}

// problems returns what is wrong with w, by key.
func (w Watch) problems() map[string]string {
	p := map[string]string{}
	if w.Interval < 100*time.Millisecond {
		p["interval"] = fmt.Sprintf("must be at least 100ms (got %s)", w.Interval)
	}
	if group, ok := w.Group(); !(w.Users == "directory" || w.Users == "all" || ok && isGUID(group)) {
		p["users"] = fmt.Sprintf("must be directory, all or group:<object id> (got %q)", w.Users)
	}
	switch {
	case w.ReadBudget < 1:
		p["read_budget"] = fmt.Sprintf("must be positive (got %d)", w.ReadBudget)
	case w.ReadBudgetWindow >= time.Second && float64(w.ReadBudget)/w.ReadBudgetWindow.Seconds() > GraphReadRequests/GraphReadWindow.Seconds():
		p["read_budget"] = fmt.Sprintf("%d per %s is faster than Graph's read limit of %d per %s", w.ReadBudget, w.ReadBudgetWindow, GraphReadRequests, GraphReadWindow)
	}
	if w.ReadBudgetWindow < time.Second {
		p["read_budget_window"] = fmt.Sprintf("must be at least 1s (got %s)", w.ReadBudgetWindow)
	}
	return p
}

// Lookup protects the lookup API (GET /v1/presence/...).
type Lookup struct {
	// Token is the bearer token callers send; empty turns the API off.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
}

// Output is one entry of `outputs:`.
type Output struct {
	Name string `yaml:"name"`
	// Type is the output type (catalog.Types: nats, webhook).
	Type string `yaml:"type"`
	// SkipSources: a change of origin bridge made by one of these sources
	// is not published. Left out, every bridge change is skipped; [] skips
	// none (outputs.Filter).
	SkipSources []string `yaml:"skip_sources"`
	// Tenants limits the output to these tenants; empty means all.
	Tenants []string `yaml:"tenants"`
	// Pairs limits the Teams pairs the output sends to those matching one
	// of these "Availability/Activity" patterns (either half may be *);
	// left out, every pair. A move to a pair not sent goes out as
	// Available/Available (outputs.Filter.Apply).
	Pairs []string `yaml:"pairs"`
	// People narrows Pairs per person of the directory (UPN or object id):
	// only the pairs listed are sent about them; [] sends nothing about
	// them on this output.
	People map[string][]string `yaml:"people"`
	// NATS is a nats output's own block; defaults when left out.
	NATS *natsout.Config `yaml:"nats"`
	// Webhook is a webhook output's own block; its url and secret are
	// required.
	Webhook *webhook.Config `yaml:"webhook"`
	// SIP is a sip output's own block; required for a sip output.
	SIP *SIPOutput `yaml:"sip"`
}

// SIPOutput is a sip output's own block: the output's settings and the
// _file and _env forms of its password.
type SIPOutput struct {
	sipout.Config `yaml:",inline"`
	PasswordFile  string `yaml:"password_file"`
	PasswordEnv   string `yaml:"password_env"`
}

// Filter returns the output's filter.
func (o Output) Filter() outputs.Filter {
	f := outputs.Filter{Tenants: o.Tenants, SkipSources: o.SkipSources, Pairs: o.Pairs}
	if len(o.People) > 0 {
		f.People = make(map[string][]string, len(o.People))
		for person, pairs := range o.People {
			if pairs == nil {
				pairs = []string{} // `alice: ` (null) sends nothing, as [] does
			}
			f.People[strings.ToLower(person)] = pairs
		}
	}
	return f
}

// Settings returns the configuration of the output's own type, named after
// the output (a natsout.Config for nats, a webhook.Config for webhook),
// for catalog.Config.Settings.
func (o Output) Settings() any {
	switch {
	case o.Type == "nats" && o.NATS != nil:
		s := *o.NATS
		s.Name = o.Name
		return s
	case o.Type == "webhook" && o.Webhook != nil:
		s := *o.Webhook
		s.Name = o.Name
		return s
	}
	if o.Type == "sip" && o.SIP != nil {
		s := o.SIP.Config
		s.Name = o.Name
		return s
	}
	return nil
}

// resolveSIPOutputs resolves the passwords of the sip outputs' blocks.
func (c *Config) resolveSIPOutputs(resolve func(path string, value *string, file, env string)) {
	for i := range c.Outputs {
		if s := c.Outputs[i].SIP; s != nil {
			resolve(fmt.Sprintf("outputs[%d].sip.password", i), &s.Password, s.PasswordFile, s.PasswordEnv)
		}
	}
}

// sipExtensions fills a sip output's people left out from the directory: each
// ext:<number> key maps the person it names to that extension. It runs
// once the directory file is loaded.
func (c *Config) sipExtensions() {
	for i := range c.Outputs {
		s := c.Outputs[i].SIP
		if s == nil || s.Extensions != nil {
			continue
		}
		s.Extensions = map[string]string{}
		for key, user := range c.Directory {
			if ext, ok := strings.CutPrefix(key, "ext:"); ok && user != "" {
				if _, taken := s.Extensions[user]; !taken || ext < s.Extensions[user] {
					s.Extensions[user] = ext
				}
			}
		}
	}
}

// twoWayDefaults fills the defaults of the outputs' own blocks.
func (c *Config) twoWayDefaults() {
	for i := range c.Outputs {
		o := &c.Outputs[i]
		if o.Type == "webhook" && o.Webhook != nil {
			if o.Webhook.Replicas == 0 {
				o.Webhook.Replicas = c.NATS.Replicas
			}
			o.Webhook.SetDefaults()
		}
		if o.Type == "sip" && o.SIP != nil {
			o.SIP.SetDefaults()
		}
		if o.Type != "nats" {
			continue
		}
		if o.NATS == nil {
			o.NATS = &natsout.Config{}
		}
		if o.NATS.Replicas == 0 {
			o.NATS.Replicas = c.NATS.Replicas
		}
		o.NATS.SetDefaults()
	}
}

// validateTwoWay checks watch, the tenants' overrides, lookup and outputs.
func (c *Config) validateTwoWay(p *problems) {
	top := c.Watch.problems()
	for _, key := range sortedKeys(top) {
		p.add("watch." + key + ": " + top[key])
	}
	for i, t := range c.Graph.Tenants {
		o := t.Watch
		if o == nil {
			continue
		}
		set := map[string]bool{"interval": o.Interval != nil, "users": o.Users != nil, "read_budget": o.ReadBudget != nil || o.ReadBudgetWindow != nil, "read_budget_window": o.ReadBudgetWindow != nil}
		merged := c.Watch.merge(o).problems()
		for _, key := range sortedKeys(merged) {
			if set[key] {
				p.add(fmt.Sprintf("graph.tenants[%d].watch.%s: %s", i, key, merged[key]))
			}
		}
	}
	if tok := c.Lookup.Token; tok != "" {
		p.check(!strings.ContainsFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), "lookup.token", "must not contain spaces or control characters")
		p.check(tok != c.Admin.Token, "lookup.token", "must differ from admin.token: a lookup client must not reach the admin API")
	}
	c.validateOutputs(p)
}

func (c *Config) validateOutputs(p *problems) {
	c.sipExtensions()
	sources, tenants := map[string]bool{}, map[string]bool{}
	for _, s := range c.Sources {
		sources[s.Name] = true
	}
	for _, t := range c.Graph.Tenants {
		tenants[t.ID] = true
	}
	names := map[string]bool{}
	// Each nats output needs a stream, a bucket and subjects of its own,
	// apart from the events stream's.
	streams := map[string]string{c.NATS.Stream: "nats.stream", c.NATS.DeadLetter: "nats.dead_letter_stream"}
	buckets := map[string]string{}
	prefixes := map[string]string{c.NATS.SubjectPrefix: "nats.subject_prefix"}
	for i, o := range c.Outputs {
		path := fmt.Sprintf("outputs[%d]", i)
		p.check(adapters.ValidSourceName(o.Name), path+".name", "must be lower-case letters, digits, '-' or '_' (got %q)", o.Name)
		p.check(!names[o.Name], path+".name", "duplicate output %q", o.Name)
		names[o.Name] = true
		p.check(slices.Contains(catalog.Types(), o.Type), path+".type", "must be one of %s (got %q)", strings.Join(catalog.Types(), ", "), o.Type)
		seen := map[string]bool{}
		for j, s := range o.SkipSources {
			p.check(sources[s], fmt.Sprintf("%s.skip_sources[%d]", path, j), "unknown source %q", s)
			p.check(!seen[s], fmt.Sprintf("%s.skip_sources[%d]", path, j), "duplicate source %q", s)
			seen[s] = true
		}
		for j, t := range o.Tenants {
			p.check(tenants[t], fmt.Sprintf("%s.tenants[%d]", path, j), "unknown tenant %q", t)
		}
		checkPairs(p, path+".pairs", o.Pairs)
		people := map[string]string{}
		for _, person := range slices.Sorted(maps.Keys(o.People)) {
			at := fmt.Sprintf("%s.people[%q]", path, person)
			switch {
			case person == "" || strings.ContainsFunc(person, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
				p.add(at + ": must be a person's UPN or object id")
			case strings.Contains(person, ":"):
				p.add(at + ": must be a person's UPN or object id, as the directory's values name them, not a directory key")
			}
			if other, ok := people[strings.ToLower(person)]; ok {
				p.add(fmt.Sprintf("%s: the same person as %q", at, other))
			}
			people[strings.ToLower(person)] = person
			checkPairs(p, at, o.People[person])
		}
		switch {
		case o.Type == "webhook" && o.Webhook == nil:
			p.add(path + ".webhook: a webhook output needs a webhook block with url and secret")
		case o.Webhook != nil && o.Type != "webhook":
			p.add(path + ".webhook: only a webhook output has a webhook block")
		case o.Webhook != nil:
			for _, problem := range o.Webhook.Problems() {
				p.add(path + ".webhook." + problem)
			}
		}
		switch {
		case o.Type == "sip" && o.SIP == nil:
			p.add(path + ".sip: required for a sip output (server at least)")
		case o.SIP != nil && o.Type != "sip":
			p.add(path + ".sip: only a sip output has a sip block")
		case o.SIP != nil:
			for _, problem := range o.SIP.Problems() {
				p.add(path + ".sip." + problem)
			}
		}
		if o.NATS == nil {
			continue
		}
		if o.Type != "nats" {
			p.add(path + ".nats: only a nats output has a nats block")
			continue
		}
		for _, problem := range o.NATS.Problems() {
			p.add(path + ".nats." + problem)
		}
		n := o.NATS
		if other, ok := streams[n.Stream]; ok {
			p.add(fmt.Sprintf("%s.nats.stream: %q is already %s", path, n.Stream, other))
		}
		streams[n.Stream] = path + ".nats.stream"
		if other, ok := buckets[n.Bucket]; ok {
			p.add(fmt.Sprintf("%s.nats.bucket: %q is already %s", path, n.Bucket, other))
		}
		buckets[n.Bucket] = path + ".nats.bucket"
		for prefix, other := range prefixes {
			if overlap(prefix, n.SubjectPrefix) {
				p.add(fmt.Sprintf("%s.nats.subject_prefix: %q overlaps %s (%q)", path, n.SubjectPrefix, other, prefix))
			}
		}
		prefixes[n.SubjectPrefix] = path + ".nats.subject_prefix"
	}
}

// checkPairs checks a list of pair patterns at path.
func checkPairs(p *problems, path string, patterns []string) {
	seen := map[string]bool{}
	for j, pattern := range patterns {
		at := fmt.Sprintf("%s[%d]", path, j)
		if err := outputs.CheckPairPattern(pattern); err != nil {
			p.add(at + ": " + err.Error())
		}
		p.check(!seen[pattern], at, "duplicate pattern %q", pattern)
		seen[pattern] = true
	}
}

// twoWayWarnings: outputs that can never publish, because no tenant they
// serve is watched; people an output names whom the directory does not
// (a typo would silently send everything about the person meant).
func (c *Config) twoWayWarnings() []string {
	var warnings []string
	known := map[string]bool{}
	for _, person := range c.Directory {
		known[strings.ToLower(person)] = true
	}
	for i, o := range c.Outputs {
		for _, person := range slices.Sorted(maps.Keys(o.People)) {
			if !known[strings.ToLower(person)] {
				warnings = append(warnings, fmt.Sprintf("outputs[%d].people[%q] is no person of the directory: it applies only if the watch finds them by that UPN or object id", i, person))
			}
		}
	}
	for i, o := range c.Outputs {
		watched := false
		for _, t := range c.Graph.Tenants {
			if c.WatchOf(t.ID).Enabled && (len(o.Tenants) == 0 || slices.Contains(o.Tenants, t.ID)) {
				watched = true
			}
		}
		if !watched {
			warnings = append(warnings, fmt.Sprintf("outputs[%d] (%s) publishes nothing: watch.enabled is false for every tenant it serves", i, o.Name))
		}
	}
	return warnings
}

// overlap reports whether the subjects under two prefixes can meet.
func overlap(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(b, a+".")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
