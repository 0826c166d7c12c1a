// Package subscriptions keeps the Graph change notification subscriptions
// that graphcalendar sources need: one per configured user on
// users/{user}/events, created when missing, renewed before it expires,
// re-created when Graph removed it, and renewed at once when Graph asks for
// reauthorization. Only the bridge that holds the tenant's writer lease
// does it, so a cluster keeps one subscription per user; the others stay
// idle until they take the lease over.
//
// The manager works in rounds (Reconcile): each round lists the
// application's subscriptions once per source and repairs what differs, so
// a lost notification or a restart costs nothing but a round. Lifecycle
// notifications only bring the next round forward. Subscription calls do
// not count against the tenant's presence budget (Graph limits them
// separately), but a 429 or 5xx pauses the tenant's rounds: for the
// Retry-After Graph gave, else with exponential backoff.
package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters/graphcalendar"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/graphclient"
)

// Client is the part of graphclient.Client the manager uses.
type Client interface {
	CreateSubscription(ctx context.Context, s graphclient.Subscription) (graphclient.Subscription, error)
	RenewSubscription(ctx context.Context, id string, until time.Time) (graphclient.Subscription, error)
	DeleteSubscription(ctx context.Context, id string) error
	ListSubscriptions(ctx context.Context) ([]graphclient.Subscription, error)
}

// Source is one graphcalendar source's subscriptions.
type Source struct {
	// Name is the source's name, as its lifecycle notifications carry it.
	Name   string
	Tenant string
	// Users are the users whose events are watched, by UPN or object id.
	Users []string
	// NotificationURL is the source's public webhook URL; it also gets the
	// lifecycle notifications unless LifecycleURL is set.
	NotificationURL, LifecycleURL string
	// ClientState is the source's secret; Graph repeats it in every
	// notification.
	ClientState string
	// Lifetime is how far ahead each create or renewal sets the
	// expiration; RenewBefore is how long before the expiration a
	// subscription is renewed.
	Lifetime, RenewBefore time.Duration
}

// Options configure a Manager.
type Options struct {
	Sources []Source
	// Client returns the tenant's Graph client.
	Client func(tenant string) (Client, error)
	// Writing tells whether this bridge holds the tenant's writer lease.
	Writing func(tenant string) bool
	// Every is the time between rounds; DefaultEvery when zero.
	Every time.Duration
	// MinBackoff and MaxBackoff bound the pause after a 429 or 5xx without
	// Retry-After; one second and five minutes when zero.
	MinBackoff, MaxBackoff time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	Log *slog.Logger
}

// DefaultEvery is the default time between rounds.
const DefaultEvery = time.Minute

// changeTypes are the changes a calendar source needs.
const changeTypes = "created,updated,deleted"

// Manager keeps the subscriptions. It is safe for concurrent use.
type Manager struct {
	opts  Options
	nudge chan struct{}

	mu      sync.Mutex
	reauth  map[string]bool      // subscription ids Graph asked to reauthorize
	paused  map[string]time.Time // tenant → no calls before
	backoff map[string]time.Duration
	stats   Stats
}

// Stats counts what the manager did, for metrics and tests.
type Stats struct {
	Created, Renewed, Deleted, Failed, Missed uint64
}

// New returns a Manager; it does nothing before Run or Reconcile.
func New(opts Options) *Manager {
	if opts.Every <= 0 {
		opts.Every = DefaultEvery
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Manager{opts: opts, nudge: make(chan struct{}, 1), reauth: map[string]bool{}, paused: map[string]time.Time{}, backoff: map[string]time.Duration{}}
}

// Stats returns the counts so far.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Run holds rounds every Options.Every, and at once after a lifecycle
// notification, until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.opts.Every)
	defer t.Stop()
	for {
		m.Reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.nudge:
		}
	}
}

// HandleLifecycle takes a source's lifecycle notification (it is a
// graphcalendar.LifecycleFunc). reauthorizationRequired marks the
// subscription for renewal; subscriptionRemoved needs nothing more than a
// round (which finds it missing); missed is logged, as the events whose
// notifications were lost are only seen again when they change. Each
// brings the next round forward.
func (m *Manager) HandleLifecycle(source string, n graphcalendar.Lifecycle) {
	log := m.opts.Log.With("source", source, "subscription", n.SubscriptionID, "lifecycle_event", n.Event)
	m.mu.Lock()
	switch n.Event {
	case "reauthorizationRequired":
		m.reauth[n.SubscriptionID] = true
		log.Info("graph asks to reauthorize a calendar subscription")
	case "subscriptionRemoved":
		log.Warn("graph removed a calendar subscription; creating it again")
	case "missed":
		m.stats.Missed++
		log.Warn("graph missed calendar change notifications; changes made meanwhile show when the events change again")
	default:
		log.Info("unknown lifecycle notification ignored")
	}
	m.mu.Unlock()
	select {
	case m.nudge <- struct{}{}:
	default:
	}
}

// Reconcile holds one round: for each source whose tenant this bridge
// writes for and is not paused, it creates, renews and deletes
// subscriptions until they match the configuration.
func (m *Manager) Reconcile(ctx context.Context) {
	for _, s := range m.opts.Sources {
		if ctx.Err() != nil {
			return
		}
		if !m.opts.Writing(s.Tenant) || m.isPaused(s.Tenant) {
			continue
		}
		c, err := m.opts.Client(s.Tenant)
		if err != nil {
			m.opts.Log.Warn("calendar subscriptions: no Graph client", "source", s.Name, "err", err)
			continue
		}
		if err := m.source(ctx, c, s); err != nil {
			m.failed(s, err)
		}
	}
}

// isPaused tells whether the tenant's calls wait after a 429 or 5xx.
func (m *Manager) isPaused(tenant string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.opts.Now().Before(m.paused[tenant])
}

// failed counts and logs a failure; a 429, 5xx or network failure pauses
// the tenant.
func (m *Manager) failed(s Source, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats.Failed++
	if !retryable(err) {
		m.opts.Log.Warn("calendar subscription call refused; trying again next round", "source", s.Name, "err", err)
		return
	}
	_, wait := fault.Of(err)
	if wait <= 0 {
		wait = min(max(m.backoff[s.Tenant]*2, m.opts.MinBackoff), m.opts.MaxBackoff)
		m.backoff[s.Tenant] = wait
	}
	m.paused[s.Tenant] = m.opts.Now().Add(wait)
	m.opts.Log.Warn("calendar subscriptions paused: Graph failed", "source", s.Name, "tenant", s.Tenant, "retry_in", wait, "err", err)
}

// resource is the subscribed resource for a user.
func resource(user string) string { return "users/" + user + "/events" }

// source repairs one source's subscriptions; it stops at the first 429,
// 5xx or network failure and returns it.
func (m *Manager) source(ctx context.Context, c Client, s Source) error {
	list, err := c.ListSubscriptions(ctx)
	if err != nil {
		return err
	}
	now := m.opts.Now()
	have := map[string]graphclient.Subscription{}
	wanted := map[string]bool{}
	for _, u := range s.Users {
		wanted[strings.ToLower(resource(u))] = true
	}
	var refused error
	for _, sub := range list {
		if sub.NotificationURL != s.NotificationURL {
			continue // another source's or another application's
		}
		key := strings.ToLower(strings.TrimPrefix(sub.Resource, "/"))
		if _, dup := have[key]; dup || !wanted[key] || !sub.ExpirationDateTime.After(now) {
			// A duplicate, a user no longer configured, or one Graph is
			// about to drop: delete it.
			if err := c.DeleteSubscription(ctx, sub.ID); err != nil && !isNotFound(err) {
				if retryable(err) {
					return err
				}
				refused = errors.Join(refused, err)
			} else {
				m.count(func(st *Stats) { st.Deleted++ })
			}
			continue
		}
		have[key] = sub
	}
	for _, u := range s.Users {
		sub, ok := have[strings.ToLower(resource(u))]
		var err error
		switch reauth := ok && m.takeReauth(sub.ID); {
		case !ok:
			err = m.create(ctx, c, s, u)
		case reauth || !sub.ExpirationDateTime.After(now.Add(s.RenewBefore)):
			if err = m.renew(ctx, c, s, u, sub); err != nil && reauth {
				m.mu.Lock()
				m.reauth[sub.ID] = true // asked again next round
				m.mu.Unlock()
			}
		}
		if err != nil {
			if retryable(err) {
				return err
			}
			refused = errors.Join(refused, err)
		}
	}
	if refused == nil {
		m.mu.Lock()
		delete(m.backoff, s.Tenant)
		m.mu.Unlock()
	}
	return refused
}

// create subscribes to user's events.
func (m *Manager) create(ctx context.Context, c Client, s Source, user string) error {
	lifecycle := s.LifecycleURL
	if lifecycle == "" {
		lifecycle = s.NotificationURL
	}
	sub, err := c.CreateSubscription(ctx, graphclient.Subscription{
		Resource: resource(user), ChangeType: changeTypes, NotificationURL: s.NotificationURL,
		LifecycleNotificationURL: lifecycle, ClientState: s.ClientState,
		ExpirationDateTime: m.opts.Now().Add(s.Lifetime),
	})
	if err != nil {
		return fmt.Errorf("subscribe to %s's calendar: %w", user, err)
	}
	m.count(func(st *Stats) { st.Created++ })
	m.opts.Log.Info("calendar subscription created", "source", s.Name, "user", user, "subscription", sub.ID, "expires", sub.ExpirationDateTime)
	return nil
}

// renew moves a subscription's expiration; one Graph no longer knows is
// created again.
func (m *Manager) renew(ctx context.Context, c Client, s Source, user string, sub graphclient.Subscription) error {
	renewed, err := c.RenewSubscription(ctx, sub.ID, m.opts.Now().Add(s.Lifetime))
	if isNotFound(err) {
		return m.create(ctx, c, s, user)
	}
	if err != nil {
		return fmt.Errorf("renew the subscription to %s's calendar: %w", user, err)
	}
	m.count(func(st *Stats) { st.Renewed++ })
	m.opts.Log.Debug("calendar subscription renewed", "source", s.Name, "user", user, "subscription", sub.ID, "expires", renewed.ExpirationDateTime)
	return nil
}

// takeReauth reports and clears a reauthorization request.
func (m *Manager) takeReauth(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	asked := m.reauth[id]
	delete(m.reauth, id)
	return asked
}

func (m *Manager) count(f func(*Stats)) {
	m.mu.Lock()
	f(&m.stats)
	m.mu.Unlock()
}

// isNotFound tells whether Graph answered 404.
func isNotFound(err error) bool {
	var gerr *graphclient.Error
	return errors.As(err, &gerr) && gerr.StatusCode == http.StatusNotFound
}

// retryable tells whether err should pause the tenant: 429, 5xx, network,
// no token.
func retryable(err error) bool {
	class, _ := fault.Of(err)
	return class == fault.Throttled || class == fault.Retry
}
