// Package config loads, defaults and validates the bridge's YAML
// configuration. Decoding is strict: an unknown key is an error naming its
// path, and validation reports every problem at once.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
	"github.com/presence-bridge/presence-bridge/graphclient/graphlimits"
)

// Config is the whole bridge configuration.
type Config struct {
	Log       Log               `yaml:"log"`
	HTTP      HTTP              `yaml:"http"`
	NATS      NATS              `yaml:"nats"`
	Graph     Graph             `yaml:"graph"`
	Presence  Presence          `yaml:"presence"`
	Directory map[string]string `yaml:"directory"`
	// DirectoryFile names a CSV (key,user) or YAML file of more directory
	// entries; SIGHUP or a change of the file reloads it (live.go).
	DirectoryFile string   `yaml:"directory_file"`
	Worker        Worker   `yaml:"worker"`
	Sources       []Source `yaml:"sources"`
	Admin         Admin    `yaml:"admin"`
	// Watch, Lookup and Outputs are two-way presence (twoway.go).
	Watch   Watch    `yaml:"watch"`
	Lookup  Lookup   `yaml:"lookup"`
	Outputs []Output `yaml:"outputs"`
}

// Log sets the logger.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// HTTP sets the ingest server.
type HTTP struct {
	Listen          string        `yaml:"listen"`
	BodyLimit       int64         `yaml:"body_limit"`
	ReadTimeout     time.Duration `yaml:"read_timeout"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MaxFutureSkew bounds how far ahead of the bridge's clock an event's
	// occurredAt may be, whatever the source.
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`
}

// NATS sets the JetStream connection, embedded or external.
type NATS struct {
	Embedded        bool          `yaml:"embedded"`
	StoreDir        string        `yaml:"store_dir"`
	Listen          string        `yaml:"listen"`
	URLs            []string      `yaml:"urls"`
	CredentialsFile string        `yaml:"credentials_file"`
	User            string        `yaml:"user"`
	Password        string        `yaml:"password"`
	PasswordFile    string        `yaml:"password_file"`
	PasswordEnv     string        `yaml:"password_env"`
	TLS             TLS           `yaml:"tls"`
	Stream          string        `yaml:"stream"`
	SubjectPrefix   string        `yaml:"subject_prefix"`
	DeadLetter      string        `yaml:"dead_letter_stream"`
	Consumer        string        `yaml:"consumer"`
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	Replicas        int           `yaml:"replicas"`
	AckWait         time.Duration `yaml:"ack_wait"`
	ConnectTimeout  time.Duration `yaml:"connect_timeout"`
	PublishTimeout  time.Duration `yaml:"publish_timeout"`
	// MaxStore caps the embedded server's JetStream file store, in bytes;
	// 0 leaves the server's own default (most of the free disk).
	MaxStore int64 `yaml:"max_store"`
	// StreamMaxBytes and StreamMaxMsgs cap the events stream (0: no cap
	// on messages). A full stream refuses new events, which are answered
	// 503; nothing stored is ever dropped.
	StreamMaxBytes int64 `yaml:"stream_max_bytes"`
	StreamMaxMsgs  int64 `yaml:"stream_max_msgs"`
	// DeadLetterMaxBytes, DeadLetterMaxMsgs and DeadLetterMaxAge cap the
	// dead-letter stream; past them the oldest records are dropped, so
	// dead letters never stop the bridge.
	DeadLetterMaxBytes int64         `yaml:"dead_letter_max_bytes"`
	DeadLetterMaxMsgs  int64         `yaml:"dead_letter_max_msgs"`
	DeadLetterMaxAge   time.Duration `yaml:"dead_letter_max_age"`
}

// TLS names the files for a TLS connection to external NATS servers.
type TLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// The default lookup budget: at most 1,000 lookups of users not yet known
// per 30 s and tenant. MaxLookupBudget bounds lookup_budget, since the
// bridge remembers when each lookup of the last window went.
const (
	DefaultLookupBudget       = 1000
	DefaultLookupBudgetWindow = 30 * time.Second
	MaxLookupBudget           = 100000
)

// Graph sets how the bridge reaches Microsoft Graph.
type Graph struct {
	Tenants      []Tenant        `yaml:"tenants"`
	Emulator     emulator.Config `yaml:"emulator"`
	Timeout      time.Duration   `yaml:"timeout"`
	UserCacheTTL time.Duration   `yaml:"user_cache_ttl"`
	// UnknownUserTTL is how long a user Graph does not know is remembered
	// as unknown.
	UnknownUserTTL time.Duration `yaml:"unknown_user_ttl"`
	Breaker        Breaker       `yaml:"breaker"`
	Retry          Retry         `yaml:"retry"`
	// RefusalProbe paces a tenant Graph refuses as a whole (401, or 403
	// for a missing permission or consent): one probing call after First,
	// the wait doubling up to Max while Graph keeps refusing.
	RefusalProbe Probe `yaml:"refusal_probe"`
}

// Probe sets a growing wait between probing calls.
type Probe struct {
	First time.Duration `yaml:"first"`
	Max   time.Duration `yaml:"max"`
}

// Worker sets how events are applied: in lanes, each user's events in
// order, different users' side by side.
type Worker struct {
	// Enabled runs the apply stage and the writers (default true). A
	// bridge with it off only takes events in: an ingest tier in front of
	// bridges that apply them.
	Enabled bool `yaml:"enabled"`
	// Lanes is how many events are applied at once.
	Lanes int `yaml:"lanes"`
	// LaneDepth bounds the events waiting in one lane; more are handed
	// back to JetStream and come again later.
	LaneDepth int `yaml:"lane_depth"`
}

// Tenant is one Entra tenant and the application registered in it.
type Tenant struct {
	ID               string `yaml:"id"`
	Cloud            string `yaml:"cloud"`
	GraphURL         string `yaml:"graph_url"`
	LoginURL         string `yaml:"login_url"`
	ClientID         string `yaml:"client_id"`
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	ClientSecretEnv  string `yaml:"client_secret_env"`
	// ClientCertificate is a PEM bundle (certificate and RSA private key)
	// used instead of a client secret.
	ClientCertificate     string `yaml:"client_certificate"`
	ClientCertificateFile string `yaml:"client_certificate_file"`
	ClientCertificateEnv  string `yaml:"client_certificate_env"`
	// Budget calls per BudgetWindow is the tenant's Graph write budget,
	// Graph's published presence limit when left out
	// (graphlimits.PresenceRequests per graphlimits.PresenceWindow).
	Budget       int           `yaml:"budget"`
	BudgetWindow time.Duration `yaml:"budget_window"`
	// LookupBudget bounds the Graph lookups of users not yet known (by
	// UPN or phone number) to at most this many in any
	// LookupBudgetWindow, so that events naming made-up users can not
	// turn into a flood of Graph calls.
	LookupBudget       int           `yaml:"lookup_budget"`
	LookupBudgetWindow time.Duration `yaml:"lookup_budget_window"`

	// --- phone number lookups (subscriptions_phones.go) ---
	// PhoneLookup resolves tel: and ext: keys missing from the directory
	// through Graph; off by default.
	PhoneLookup PhoneLookup `yaml:"phone_lookup"`
	// --- end phone number lookups ---
	// Watch overrides the top-level watch for this tenant (twoway.go).
	Watch *WatchOverride `yaml:"watch"`
}

// Breaker sets the circuit breaker in front of Graph.
type Breaker struct {
	Failures    uint32        `yaml:"failures"`
	OpenTimeout time.Duration `yaml:"open_timeout"`
}

// Retry sets the delays before a failed Graph call is tried again.
type Retry struct {
	MinDelay time.Duration `yaml:"min_delay"`
	MaxDelay time.Duration `yaml:"max_delay"`
}

// Presence sets how events become presence.
type Presence struct {
	Expiration      time.Duration `yaml:"expiration"`
	MaxCallDuration time.Duration `yaml:"max_call_duration"`
	LeaseTTL        time.Duration `yaml:"lease_ttl"`
	ObserveInterval time.Duration `yaml:"observe_interval"`
	Mapping         Mapping       `yaml:"mapping"`
	Priority        []string      `yaml:"priority"`
	// MaxClaims caps the claims (calls, meetings, presence) kept per
	// person; MaxStateSize caps a person's stored state in bytes.
	MaxClaims    int `yaml:"max_claims"`
	MaxStateSize int `yaml:"max_state_size"`
	// StatusMessages are the status messages shown while an activity
	// sets the session; all empty (the default) turns them off.
	StatusMessages StatusMessages `yaml:"status_messages"`
}

// StatusMessages name the status message ("On a call") shown under a
// person's name while each kind of activity sets their session; an empty
// value shows none. Each message expires Expiry after it was set and is
// set again before that while the activity lasts.
type StatusMessages struct {
	Call           string        `yaml:"call"`
	ConferenceCall string        `yaml:"conference_call"`
	Ringing        string        `yaml:"ringing"`
	Meeting        string        `yaml:"meeting"`
	Expiry         time.Duration `yaml:"expiry"`
}

// ByKind returns the messages that are set, keyed by kind of activity
// ("call", "conference_call", "ringing", "meeting").
func (s StatusMessages) ByKind() map[string]string {
	m := map[string]string{}
	for kind, text := range map[string]string{"call": s.Call, "conference_call": s.ConferenceCall, "ringing": s.Ringing, "meeting": s.Meeting} {
		if text != "" {
			m[kind] = text
		}
	}
	return m
}

// Mapping names the presence pair ("Availability/Activity") each kind of
// activity sets; an empty value sets nothing.
type Mapping struct {
	Call           string   `yaml:"call"`
	ConferenceCall string   `yaml:"conference_call"`
	Ringing        string   `yaml:"ringing"`
	Meeting        string   `yaml:"meeting"`
	MeetingShowAs  []string `yaml:"meeting_show_as"`
}

// Source is one configured event source.
type Source struct {
	Name       string            `yaml:"name"`
	Type       string            `yaml:"type"`
	Tenant     string            `yaml:"tenant"`
	Path       string            `yaml:"path"`
	Token      string            `yaml:"token"`
	TokenFile  string            `yaml:"token_file"`
	TokenEnv   string            `yaml:"token_env"`
	Secret     string            `yaml:"secret"`
	SecretFile string            `yaml:"secret_file"`
	SecretEnv  string            `yaml:"secret_env"`
	PublicURL  string            `yaml:"public_url"`
	States     map[string]string `yaml:"states"`
	Lapse      time.Duration     `yaml:"lapse"`
	// Identity completes the identities the source emits.
	Identity adapters.IdentityHints `yaml:"identity"`

	// --- managed Graph calendar subscriptions (subscriptions_phones.go) ---
	// Subscriptions has the bridge keep a graphcalendar source's
	// subscriptions; nil leaves them to the administrator.
	Subscriptions *CalendarSubscriptions `yaml:"subscriptions"`
	// --- end managed Graph calendar subscriptions ---
	// SIPDialog and CalDAV configure the sources that connect out, of
	// type sipdialog and caldav (connectout.go).
	SIPDialog *SIPDialog `yaml:"sipdialog"`
	CalDAV    *CalDAV    `yaml:"caldav"`
}

// Admin protects the administrative HTTP endpoints and says where the
// operations surface (metrics, admin API, status page) listens.
type Admin struct {
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
	// Listen serves /metrics, /v1/admin/ and the status page on an address
	// of their own, away from the public webhooks; empty serves them on
	// http.listen.
	Listen string `yaml:"listen"`
	// History bounds each user's history ("why is Alice busy?").
	History History `yaml:"history"`
}

// History bounds the per-user history kept in NATS.
type History struct {
	// MaxEntries is how many entries are kept per user, MaxAge how long.
	MaxEntries int           `yaml:"max_entries"`
	MaxAge     time.Duration `yaml:"max_age"`
	// MaxRate caps the entries recorded per second, across users, so
	// that a burst of events costs the event path no more than this many
	// extra writes; entries beyond it are dropped and counted.
	MaxRate int `yaml:"max_rate"`
}

// Error lists every problem found in a configuration.
type Error struct {
	Problems []string
}

func (e *Error) Error() string {
	return "invalid configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

// Load reads, decodes, defaults and validates the file at path. Relative
// file paths inside it are taken relative to the file's folder.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, filepath.Dir(path))
}

// Parse decodes, defaults and validates a configuration document; baseDir
// anchors relative *_file paths.
func Parse(data []byte, baseDir string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{Problems: []string{yamlProblem(err)}}
	}
	// Unknown keys and values of the wrong type are reported with their
	// paths, together with every other problem (live.go).
	problems := append(unknownKeys(&root, reflect.TypeOf(Config{}), ""), scalarProblems(&root, reflect.TypeOf(Config{}), "")...)
	cfg := Default()
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && len(problems) == 0 {
			return nil, &Error{Problems: []string{yamlProblem(err)}}
		}
	}
	cfg.Graph.Emulator.SetDefaults()
	cfg.applyDerivedDefaults()
	problems = append(problems, cfg.resolveSecrets(baseDir)...)
	problems = append(problems, cfg.loadDirectoryFile(baseDir)...)
	problems = append(problems, cfg.validate()...)
	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	return cfg, nil
}

func yamlProblem(err error) string {
	var typeErr *yaml.TypeError
	if errors.As(err, &typeErr) {
		return "yaml: " + strings.Join(typeErr.Errors, "; ")
	}
	return err.Error()
}

// Default returns the configuration used for every key the file leaves out.
func Default() *Config {
	return &Config{
		Log:  Log{Level: "info", Format: "text"},
		HTTP: HTTP{Listen: "127.0.0.1:8080", BodyLimit: 1 << 20, ReadTimeout: 10 * time.Second, ShutdownTimeout: 10 * time.Second, MaxFutureSkew: adapters.DefaultMaxFutureSkew},
		NATS: NATS{
			Embedded:        true,
			StoreDir:        "data/nats",
			Stream:          "PRESENCE_EVENTS",
			SubjectPrefix:   "presence.events",
			DeadLetter:      "PRESENCE_DLQ",
			Consumer:        "presence-worker",
			DuplicateWindow: time.Hour,
			Replicas:        1,
			AckWait:         30 * time.Second,
			ConnectTimeout:  5 * time.Second,
			PublishTimeout:  5 * time.Second,

			StreamMaxBytes:     256 << 20,
			StreamMaxMsgs:      1_000_000,
			DeadLetterMaxBytes: 64 << 20,
			DeadLetterMaxMsgs:  100_000,
			DeadLetterMaxAge:   30 * 24 * time.Hour,
		},
		Graph: Graph{
			Timeout:        10 * time.Second,
			UserCacheTTL:   time.Hour,
			UnknownUserTTL: time.Minute,
			Breaker:        Breaker{Failures: 5, OpenTimeout: 30 * time.Second},
			Retry:          Retry{MinDelay: time.Second, MaxDelay: time.Minute},
			RefusalProbe:   Probe{First: 30 * time.Second, Max: 10 * time.Minute},
		},
		Worker: Worker{Enabled: true, Lanes: 8, LaneDepth: 2048},
		Watch:  DefaultWatch(),
		Admin:  Admin{History: History{MaxEntries: 50, MaxAge: 24 * time.Hour, MaxRate: 500}},
		Presence: Presence{
			Expiration:      15 * time.Minute,
			MaxCallDuration: 4 * time.Hour,
			LeaseTTL:        10 * time.Second,
			ObserveInterval: 5 * time.Minute,
			Mapping: Mapping{
				Call:           "Busy/InACall",
				ConferenceCall: "Busy/InAConferenceCall",
				Meeting:        "Busy/InAConferenceCall",
				MeetingShowAs:  []string{"busy", "oof"},
			},
			Priority:       []string{"conference", "call", "meeting", "presence"},
			MaxClaims:      64,
			MaxStateSize:   64 << 10,
			StatusMessages: StatusMessages{Expiry: time.Hour},
		},
	}
}

// applyDerivedDefaults fills defaults that depend on other keys.
func (c *Config) applyDerivedDefaults() {
	for i := range c.Graph.Tenants {
		t := &c.Graph.Tenants[i]
		if t.Cloud == "" {
			t.Cloud = "global"
		}
		if t.Budget == 0 {
			t.Budget = graphlimits.PresenceRequests
		}
		if t.BudgetWindow == 0 {
			t.BudgetWindow = graphlimits.PresenceWindow
		}
		if t.LookupBudget == 0 {
			t.LookupBudget = DefaultLookupBudget
		}
		if t.LookupBudgetWindow == 0 {
			t.LookupBudgetWindow = DefaultLookupBudgetWindow
		}
	}
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Path == "" && s.Name != "" && !ConnectsOut(s.Type) {
			s.Path = "/v1/hooks/" + s.Name
		}
		if s.Tenant == "" && len(c.Graph.Tenants) == 1 {
			s.Tenant = c.Graph.Tenants[0].ID
		}
	}
	c.subscriptionAndPhoneDefaults() // managed calendar subscriptions, phone lookups
	c.twoWayDefaults()               // outputs
}

// resolveSecrets replaces each secret's *_file or *_env form by its value.
func (c *Config) resolveSecrets(baseDir string) []string {
	var problems []string
	resolve := func(path string, value *string, file, env string) {
		v, err := resolveSecret(*value, file, env, baseDir)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", path, err))
			return
		}
		*value = v
	}
	resolve("nats.password", &c.NATS.Password, c.NATS.PasswordFile, c.NATS.PasswordEnv)
	resolve("admin.token", &c.Admin.Token, c.Admin.TokenFile, c.Admin.TokenEnv)
	resolve("lookup.token", &c.Lookup.Token, c.Lookup.TokenFile, c.Lookup.TokenEnv)
	for i := range c.Graph.Tenants {
		t := &c.Graph.Tenants[i]
		resolve(fmt.Sprintf("graph.tenants[%d].client_secret", i), &t.ClientSecret, t.ClientSecretFile, t.ClientSecretEnv)
		resolve(fmt.Sprintf("graph.tenants[%d].client_certificate", i), &t.ClientCertificate, t.ClientCertificateFile, t.ClientCertificateEnv)
	}
	for i := range c.Sources {
		s := &c.Sources[i]
		resolve(fmt.Sprintf("sources[%d].token", i), &s.Token, s.TokenFile, s.TokenEnv)
		resolve(fmt.Sprintf("sources[%d].secret", i), &s.Secret, s.SecretFile, s.SecretEnv)
		s.resolveConnectOut(i, resolve)
	}
	for i := range c.Outputs {
		if w := c.Outputs[i].Webhook; w != nil {
			resolve(fmt.Sprintf("outputs[%d].webhook.secret", i), &w.Secret, w.SecretFile, w.SecretEnv)
		}
	}
	c.resolveSIPOutputs(resolve)
	return problems
}

// resolveSecret returns the secret given inline, in a file or in an
// environment variable; at most one of the three may be set.
func resolveSecret(inline, file, env, baseDir string) (string, error) {
	set := 0
	for _, v := range []string{inline, file, env} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		return "", errors.New("set only one of the value, its _file or its _env")
	}
	switch {
	case file != "":
		if !filepath.IsAbs(file) {
			file = filepath.Join(baseDir, file)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		return strings.TrimSpace(string(data)), nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s is not set", env)
		}
		return v, nil
	}
	return inline, nil
}

// ParseEmulator decodes a standalone Graph emulator configuration, whose
// top-level keys are those of the bridge's graph.emulator section, with the
// same strictness.
func ParseEmulator(data []byte) (emulator.Config, error) {
	var cfg emulator.Config
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return cfg, &Error{Problems: []string{yamlProblem(err)}}
	}
	if problems := unknownKeys(&root, reflect.TypeOf(cfg), ""); len(problems) > 0 {
		return cfg, &Error{Problems: problems}
	}
	if err := root.Decode(&cfg); err != nil && root.Kind != 0 {
		return cfg, &Error{Problems: []string{yamlProblem(err)}}
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return cfg, &Error{Problems: strings.Split(err.Error(), "\n")}
	}
	return cfg, nil
}
