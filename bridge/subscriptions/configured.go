package subscriptions

import (
	"context"
	"sync/atomic"

	"github.com/presence-bridge/presence-bridge/adapters/graphcalendar"
	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// Managed is the Manager of the configured sources' subscriptions, run
// while the writers run (Start, Stop): it acts for the tenants whose
// writer lease this bridge holds.
type Managed struct {
	manager *Manager
	// writing is the writers' Writing, set while they run.
	writing atomic.Pointer[func(tenant string) bool]
	stop    func()
}

// FromConfig builds the manager of the subscriptions the configured
// sources ask for, rounds as often as the most frequent of them asks;
// opts gives the Graph client, the clock and the log. It returns nil
// when no source asks for managed subscriptions.
func FromConfig(sources []config.Source, opts Options) *Managed {
	opts.Sources, opts.Every = nil, 0
	for _, s := range sources {
		c := s.Subscriptions
		if c == nil {
			continue
		}
		opts.Sources = append(opts.Sources, Source{
			Name: s.Name, Tenant: s.Tenant, Users: c.Users, NotificationURL: c.NotificationURL,
			LifecycleURL: c.LifecycleURL, ClientState: s.Secret, Lifetime: c.Lifetime, RenewBefore: c.RenewBefore,
		})
		if opts.Every == 0 || c.Every < opts.Every {
			opts.Every = c.Every
		}
	}
	if len(opts.Sources) == 0 {
		return nil
	}
	m := &Managed{}
	opts.Writing = func(tenant string) bool {
		w := m.writing.Load()
		return w != nil && (*w)(tenant)
	}
	m.manager = New(opts)
	return m
}

// Lifecycle is where graphcalendar sources send lifecycle notifications;
// nil without managed subscriptions.
func (m *Managed) Lifecycle() graphcalendar.LifecycleFunc {
	if m == nil {
		return nil
	}
	return m.manager.HandleLifecycle
}

// Start runs the manager, for the tenants writing says this bridge
// writes for, until Stop.
func (m *Managed) Start(writing func(tenant string) bool) {
	if m == nil {
		return
	}
	m.writing.Store(&writing)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.manager.Run(ctx) }()
	m.stop = func() { cancel(); <-done; m.writing.Store(nil) }
}

// Stop stops the manager; subscriptions stay in Graph for the next lease
// holder.
func (m *Managed) Stop() {
	if m == nil || m.stop == nil {
		return
	}
	m.stop()
	m.stop = nil
}
