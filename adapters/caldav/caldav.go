// Package caldav is a source that polls CalDAV calendars (Google
// Workspace, Nextcloud, Fastmail, Radicale, ...) and turns the events that
// make a person busy into meeting windows.
//
// Each poll asks a collection for its sync-token or ctag first, so an
// unchanged calendar costs one request; a changed one is read with a
// sync-collection REPORT (RFC 6578) or, where the server has none, a
// listing of etags, and only new or changed objects are fetched. Recurring
// events are expanded over a window around now. An event id names the
// occurrence (calendar, UID, RECURRENCE-ID) and the poll that saw the
// change, so a revision that repeats an earlier one is a new event and not
// a duplicate. Once every calendar of a person has been read in full, the
// source sends a meeting resync for the person, which ends whatever was
// claimed before it started (by an earlier run or another bridge) and is
// gone now.
package caldav

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// Config is one caldav source.
type Config struct {
	// Name is the source name stamped on every event.
	Name string `yaml:"name"`
	// Calendars lists whose calendars are polled.
	Calendars []Calendar `yaml:"calendars"`
	// PollInterval is the time between polls (default 1m).
	PollInterval time.Duration `yaml:"poll_interval"`
	// WindowBefore and WindowAfter bound the expansion window around now
	// (default 1h before, 24h after).
	WindowBefore time.Duration `yaml:"window_before"`
	WindowAfter  time.Duration `yaml:"window_after"`
	// DiscoverInterval is how often calendars are discovered again from a
	// principal (default 1h).
	DiscoverInterval time.Duration `yaml:"discover_interval"`
	// TimeZone places floating times and all-day dates (default UTC).
	TimeZone string `yaml:"time_zone"`
	// MaxObjectBytes caps one calendar object (default 256 KiB); bigger
	// ones are skipped.
	MaxObjectBytes int `yaml:"max_object_bytes"`
	// MaxObjects caps the objects tracked per collection (default 10000).
	MaxObjects int `yaml:"max_objects"`
	// MaxOccurrences caps the windows per person and poll (default 1000).
	MaxOccurrences int `yaml:"max_occurrences"`
	// MaxResponseBytes caps one HTTP response body (default 16 MiB).
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// RequestTimeout bounds one HTTP request (default 30s).
	RequestTimeout time.Duration `yaml:"request_timeout"`

	// Now returns the current time; nil means time.Now. It places the
	// window and stamps occurredAt.
	Now func() time.Time `yaml:"-"`
	// Transport carries the HTTP requests; nil means
	// http.DefaultTransport.
	Transport http.RoundTripper `yaml:"-"`
	// Logger receives the source's logs; nil means slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Calendar is one person's calendar account.
type Calendar struct {
	// User names the person in events (UPN, email or a directory key).
	User string `yaml:"user"`
	// URL is a calendar collection. Set it or Principal.
	URL string `yaml:"url"`
	// Principal is a principal URL (or the server's CalDAV root) from
	// which the person's calendars are discovered.
	Principal string `yaml:"principal"`
	// Addresses are the person's ATTENDEE addresses (without "mailto:");
	// default User when it is an email address.
	Addresses []string `yaml:"addresses"`
	// Username and Password are basic-auth credentials; Token a bearer
	// token. Both come already resolved from their _file or _env form.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	Token    string `yaml:"token"`
	// PasswordFile, PasswordEnv, TokenFile and TokenEnv are the _file and
	// _env forms of Password and Token. The bridge's configuration reads
	// them into Password and Token; the source itself ignores them.
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	TokenFile    string `yaml:"token_file"`
	TokenEnv     string `yaml:"token_env"`
}

// Defaults.
const (
	DefaultPollInterval     = time.Minute
	DefaultWindowBefore     = time.Hour
	DefaultWindowAfter      = 24 * time.Hour
	DefaultDiscoverInterval = time.Hour
	DefaultMaxObjectBytes   = 256 << 10
	DefaultMaxObjects       = 10000
	DefaultMaxOccurrences   = 1000
	DefaultMaxResponseBytes = 16 << 20
	DefaultRequestTimeout   = 30 * time.Second
)

// multigetBatch is how many objects one calendar-multiget asks for.
const multigetBatch = 50

func (c *Config) setDefaults() {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&c.PollInterval, DefaultPollInterval}, {&c.WindowBefore, DefaultWindowBefore}, {&c.WindowAfter, DefaultWindowAfter},
		{&c.DiscoverInterval, DefaultDiscoverInterval}, {&c.RequestTimeout, DefaultRequestTimeout}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxObjectBytes == 0 {
		c.MaxObjectBytes = DefaultMaxObjectBytes
	}
	if c.MaxObjects == 0 {
		c.MaxObjects = DefaultMaxObjects
	}
	if c.MaxOccurrences == 0 {
		c.MaxOccurrences = DefaultMaxOccurrences
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
}

// Validate names every problem of the configuration (after defaults),
// without ever quoting a secret.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !adapters.ValidSourceName(c.Name) {
		bad("name: %q is not a source name (a-z, 0-9, '-', '_')", c.Name)
	}
	if len(c.Calendars) == 0 {
		bad("calendars: at least one is needed")
	}
	for i, cal := range c.Calendars {
		at := fmt.Sprintf("calendars[%d]", i)
		if cal.User == "" || len(cal.User) > adapters.MaxUserLength {
			bad("%s.user: must be 1 to %d characters", at, adapters.MaxUserLength)
		}
		if (cal.URL == "") == (cal.Principal == "") {
			bad("%s: set exactly one of url and principal", at)
		}
		for _, f := range []struct{ name, v string }{{"url", cal.URL}, {"principal", cal.Principal}} {
			if f.v == "" {
				continue
			}
			u, err := url.Parse(f.v)
			switch {
			case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
				bad("%s.%s: must be an absolute http or https URL", at, f.name)
			case u.User != nil:
				bad("%s.%s: must not hold credentials; use username and password", at, f.name)
			}
		}
		switch {
		case cal.Token != "" && (cal.Username != "" || cal.Password != ""):
			bad("%s: set either token or username and password", at)
		case (cal.Username == "") != (cal.Password == "") && cal.Token == "":
			bad("%s: username and password go together", at)
		}
	}
	if c.PollInterval < time.Second {
		bad("poll_interval: must be at least 1s")
	}
	if c.WindowBefore < 0 || c.WindowAfter <= 0 || c.WindowBefore+c.WindowAfter > 31*24*time.Hour {
		bad("window_before, window_after: must be >= 0, > 0 and together at most 31 days")
	}
	if c.DiscoverInterval < c.PollInterval {
		bad("discover_interval: must be at least poll_interval")
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil {
		bad("time_zone: %v", err)
	}
	if c.MaxObjectBytes < 1024 || c.MaxObjects < 1 || c.MaxOccurrences < 1 || c.MaxResponseBytes < int64(c.MaxObjectBytes) || c.RequestTimeout <= 0 {
		bad("max_object_bytes >= 1024, max_objects, max_occurrences, request_timeout > 0 and max_response_bytes >= max_object_bytes are required")
	}
	return errors.Join(errs...)
}

// Source polls the configured calendars. It implements adapters.Runner.
type Source struct {
	cfg    Config
	log    *slog.Logger
	loc    *time.Location
	people []*account
	// started is the time of the first poll; the resync of each person
	// is dated then.
	started time.Time
	// lastStamp is the stamp of the last account poll (see stamp).
	lastStamp int64
	// resynced holds the people whose resync is published.
	resynced map[string]bool
}

var _ adapters.Runner = (*Source)(nil)

// New checks cfg (after filling in defaults) and returns the source.
func New(cfg Config) (*Source, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("caldav source %s: %w", cfg.Name, err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	loc, _ := time.LoadLocation(cfg.TimeZone)
	s := &Source{cfg: cfg, log: cfg.Logger.With("source", cfg.Name), loc: loc, resynced: map[string]bool{}}
	for _, cal := range cfg.Calendars {
		s.people = append(s.people, newAccount(cfg, cal, loc))
	}
	return s, nil
}

// Run polls every PollInterval until ctx ends, publishing what changed. A
// failing calendar is logged and tried again at the next poll; its claims
// stand meanwhile (each window ends by itself).
func (s *Source) Run(ctx context.Context, publish adapters.Publish) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := s.Poll(ctx, publish); err != nil && ctx.Err() == nil {
			s.log.Warn("caldav poll incomplete", "err", err)
		}
		t.Reset(s.cfg.PollInterval)
	}
}

// Poll polls every calendar once and publishes the windows that began,
// changed or ended since the last poll, and the resync of each person
// whose calendars have now all been read in full. It returns the problems
// met. Run calls it; it must not be called while Run runs.
func (s *Source) Poll(ctx context.Context, publish adapters.Publish) error {
	if s.started.IsZero() {
		s.started = s.cfg.Now()
	}
	var errs []error
	for _, a := range s.people {
		if err := a.poll(ctx, s, publish); err != nil {
			errs = append(errs, fmt.Errorf("calendars of %s: %w", a.cal.User, err))
		}
	}
	if err := s.resync(ctx, publish); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// resync publishes, once per person, a meeting resync dated when the
// source started, as soon as every calendar of the person has been read
// in full: the windows read are published by then, each dated at or after
// the start, so what ends is only what was claimed before (by an earlier
// run or another bridge) and not said again. A person with a calendar
// that could not be read yet waits: ending their claims then would end
// meetings that may stand.
func (s *Source) resync(ctx context.Context, publish adapters.Publish) error {
	var events []adapters.Event
	for _, a := range s.people {
		user := a.cal.User
		if s.resynced[user] || slices.ContainsFunc(events, func(ev adapters.Event) bool { return ev.User == user }) ||
			slices.ContainsFunc(s.people, func(b *account) bool { return b.cal.User == user && !b.read }) {
			continue
		}
		events = append(events, adapters.Event{
			ID:     resyncPrefix + digest(user)[:16] + ":" + strconv.FormatInt(s.started.UnixNano(), 10),
			Source: s.cfg.Name, Type: adapters.TypeMeeting, User: user, OccurredAt: s.started.UTC(), State: adapters.MeetingResync,
		})
	}
	for len(events) > 0 {
		n := min(len(events), adapters.MaxBatchSize)
		if err := publish(ctx, events[:n]); err != nil {
			return fmt.Errorf("publish resync: %w", err) // tried again at the next poll
		}
		for _, ev := range events[:n] {
			s.resynced[ev.User] = true
		}
		events = events[n:]
	}
	return nil
}

// stamp returns a number that no earlier poll of this source had, for the
// ids of the events of a poll at now: now in nanoseconds, or one more than
// the last stamp when the clock stood still or went back. A restarted
// source (or the next bridge) starts from its clock, beyond the stamps
// of the run before.
func (s *Source) stamp(now time.Time) int64 {
	s.lastStamp = max(s.lastStamp+1, now.UnixNano())
	return s.lastStamp
}

// account is one configured Calendar and what is known of it.
type account struct {
	cal         Calendar
	http        *http.Client
	addresses   []string
	collections map[string]*collection // by URL
	discovered  time.Time
	// published holds the window last published per occurrence key.
	published map[string]published
	// read is set once every collection was read in full and what it
	// holds published.
	read bool
}

type published struct {
	version string
	end     time.Time
}

func newAccount(cfg Config, cal Calendar, loc *time.Location) *account {
	base := cal.URL
	if base == "" {
		base = cal.Principal
	}
	u, _ := url.Parse(base)
	tr := &authTransport{base: cfg.Transport, scheme: u.Scheme, host: u.Host, maxBody: cfg.MaxResponseBytes}
	switch {
	case cal.Token != "":
		tr.secret, tr.bearer = cal.Token, true
	case cal.Password != "":
		tr.username, tr.secret = cal.Username, cal.Password
	}
	a := &account{
		cal:         cal,
		http:        &http.Client{Transport: tr, Timeout: cfg.RequestTimeout},
		collections: map[string]*collection{},
		published:   map[string]published{},
	}
	for _, addr := range cal.Addresses {
		a.addresses = append(a.addresses, strings.ToLower(strings.TrimPrefix(strings.TrimSpace(addr), "mailto:")))
	}
	if len(a.addresses) == 0 && strings.Contains(cal.User, "@") {
		a.addresses = []string{strings.ToLower(cal.User)}
	}
	if cal.URL != "" {
		a.collections[cal.URL] = newCollection(cal.URL)
	}
	return a
}

// poll brings the account's collections up to date and publishes the
// difference between the windows now and those published before.
func (a *account) poll(ctx context.Context, s *Source, publish adapters.Publish) error {
	now := s.cfg.Now()
	var errs []error
	if a.cal.Principal != "" && (a.discovered.IsZero() || now.Sub(a.discovered) >= s.cfg.DiscoverInterval || now.Before(a.discovered)) {
		if err := a.discover(ctx); err != nil {
			errs = append(errs, err)
		} else {
			a.discovered = now
		}
	}
	p := person{addresses: a.addresses, loc: s.loc}
	for _, c := range a.collections {
		if err := c.sync(ctx, a.http, s.cfg, p, s.log); err != nil {
			errs = append(errs, fmt.Errorf("collection %s: %w", c.url, err))
		}
	}
	from, to := now.Add(-s.cfg.WindowBefore), now.Add(s.cfg.WindowAfter)
	current, complete := a.windows(from, to, s.cfg.MaxOccurrences)
	if !complete {
		s.log.Warn("caldav occurrences capped; none is ended this poll", "user", a.cal.User, "max", s.cfg.MaxOccurrences)
	}
	events, next := a.diff(s.cfg.Name, current, complete, from, now, s.stamp(now))
	for len(events) > 0 {
		n := min(len(events), adapters.MaxBatchSize)
		if err := publish(ctx, events[:n]); err != nil {
			// Nothing is recorded: the next poll publishes the same ids
			// again, and those already stored are dropped as duplicates.
			return errors.Join(append(errs, fmt.Errorf("publish: %w", err))...)
		}
		events = events[n:]
	}
	a.published = next
	if len(errs) == 0 && complete {
		a.read = true
	}
	return errors.Join(errs...)
}

// windows expands every object of every collection over [from, to), in
// a fixed order so that a capped expansion keeps the same windows from
// poll to poll. complete is false when the cap cut it short.
func (a *account) windows(from, to time.Time, limit int) (current map[string]window, complete bool) {
	current = map[string]window{}
	for _, cu := range slices.Sorted(maps.Keys(a.collections)) {
		c := a.collections[cu]
		for _, href := range slices.Sorted(maps.Keys(c.objects)) {
			obj := c.objects[href]
			occs, err := expand(obj.comps, from, to, limit-len(current))
			for _, o := range occs {
				current[occurrenceKey(a.cal.User, c.url, o)] = window{Occurrence: o, version: version(o)}
			}
			if err != nil {
				return current, false
			}
		}
	}
	return current, true
}

// window is a current occurrence and its version.
type window struct {
	Occurrence
	version string
}

// diff returns the events that turn what was published into current: a
// window for each new or changed occurrence, an end for each that is gone
// (deleted, moved away, cancelled, declined) unless it simply passed or
// current is not complete; and what is published once they are stored.
// The poll's stamp makes their ids new even when a revision repeats an
// earlier one (accepted, declined, accepted again).
func (a *account) diff(source string, current map[string]window, complete bool, from, now time.Time, stamp int64) ([]adapters.Event, map[string]published) {
	poll := strconv.FormatInt(stamp, 10)
	var events []adapters.Event
	next := make(map[string]published, len(current))
	for key, w := range current {
		next[key] = published{version: w.version, end: w.End}
		if p, ok := a.published[key]; ok && p.version == w.version {
			continue
		}
		start, end := w.Start, w.End
		events = append(events, adapters.Event{
			ID: idPrefix + key + ":" + poll + "-" + w.version, Source: source, Type: adapters.TypeMeeting,
			User: a.cal.User, OccurredAt: now.UTC(), Start: &start, End: &end, ShowAs: w.ShowAs,
		})
	}
	for key, p := range a.published {
		if _, ok := current[key]; ok {
			continue
		}
		if !p.end.After(from) {
			continue // it ended by itself
		}
		if !complete {
			next[key] = p // it may only have been cut off
			continue
		}
		events = append(events, adapters.Event{
			ID: idPrefix + key + ":" + poll + "-ended", Source: source, Type: adapters.TypeMeeting,
			User: a.cal.User, OccurredAt: now.UTC(), State: adapters.MeetingEnded,
		})
	}
	slices.SortFunc(events, func(x, y adapters.Event) int { return strings.Compare(x.ID, y.ID) })
	return events, next
}

// idPrefix starts every window's id:
// "caldav-event:<occurrence>:<stamp>-<version>", or "-ended" for an end,
// so that every version of one occurrence shares "<occurrence>" (which is
// how the bridge's state tells one meeting from another).
const idPrefix = "caldav-event:"

// resyncPrefix starts a resync's id: "caldav-resync:<person>:<start>".
const resyncPrefix = "caldav-resync:"

// occurrenceKey names an occurrence of a person's collection by hash, so
// that ids stay short printable ASCII whatever the UID holds.
func occurrenceKey(user, collection string, o Occurrence) string {
	rid := ""
	if !o.RecurrenceID.IsZero() {
		rid = o.RecurrenceID.UTC().Format(time.RFC3339)
	}
	return digest(user, collection, o.UID, rid)
}

// version names what a window says, so that a poll publishes only the
// windows that changed.
func version(o Occurrence) string {
	return digest(o.Start.Format(time.RFC3339), o.End.Format(time.RFC3339), o.ShowAs)[:16]
}

func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}
