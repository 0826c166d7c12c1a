package bridge

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters/graphcalendar"
	"github.com/presence-bridge/presence-bridge/bridge/subscriptions"
	"github.com/presence-bridge/presence-bridge/bridge/writer"
)

// calendarSubs runs the manager of graphcalendar sources' subscriptions
// while the writers run: it acts for the tenants whose writer lease this
// bridge holds.
type calendarSubs struct {
	manager *subscriptions.Manager
	// pool is the writers the manager asks, set while they run.
	pool atomic.Pointer[writer.Pool]
	stop func()
}

// newCalendarSubs builds the manager, or returns nil when no source asks
// for managed subscriptions.
func (b *Bridge) newCalendarSubs() *calendarSubs {
	var sources []subscriptions.Source
	every := time.Duration(0)
	for _, s := range b.cfg.Sources {
		c := s.Subscriptions
		if c == nil {
			continue
		}
		sources = append(sources, subscriptions.Source{
			Name: s.Name, Tenant: s.Tenant, Users: c.Users, NotificationURL: c.NotificationURL,
			LifecycleURL: c.LifecycleURL, ClientState: s.Secret, Lifetime: c.Lifetime, RenewBefore: c.RenewBefore,
		})
		if every == 0 || c.Every < every {
			every = c.Every
		}
	}
	if len(sources) == 0 {
		return nil
	}
	cs := &calendarSubs{}
	now := time.Now
	if b.clock != nil {
		now = b.clock.Now
	}
	cs.manager = subscriptions.New(subscriptions.Options{
		Sources: sources,
		Client: func(tenant string) (subscriptions.Client, error) {
			c, err := b.graph.Client(tenant)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
		Writing: func(tenant string) bool {
			p := cs.pool.Load()
			return p != nil && p.Writing(tenant)
		},
		Every: every,
		Now:   now,
		Log:   b.log.With("component", "calendar-subscriptions"),
	})
	return cs
}

// lifecycle is where graphcalendar sources send lifecycle notifications;
// nil without managed subscriptions.
func (cs *calendarSubs) lifecycle() graphcalendar.LifecycleFunc {
	if cs == nil {
		return nil
	}
	return cs.manager.HandleLifecycle
}

// start runs the manager against pool until stopped.
func (cs *calendarSubs) start(pool *writer.Pool) {
	if cs == nil {
		return
	}
	cs.pool.Store(pool)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); cs.manager.Run(ctx) }()
	cs.stop = func() { cancel(); <-done; cs.pool.Store(nil) }
}

// halt stops the manager; subscriptions stay in Graph for the next lease
// holder.
func (cs *calendarSubs) halt() {
	if cs == nil || cs.stop == nil {
		return
	}
	cs.stop()
	cs.stop = nil
}
