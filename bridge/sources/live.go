package sources

import (
	"errors"
	"slices"
	"sync"

	"github.com/presence-bridge/presence-bridge/adapters/graphcalendar"
	"github.com/presence-bridge/presence-bridge/bridge/admin"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/ingest"
)

// Live is the webhook sources the HTTP front serves, as last loaded:
// Reload swaps their credentials and adapters at once.
type Live struct {
	http      config.HTTP
	lifecycle graphcalendar.LifecycleFunc
	set       *ingest.SourceSet

	mu     sync.Mutex
	config []config.Source // the sources as last loaded
}

// NewLive builds the webhook sources of sources (see Webhooks).
func NewLive(sources []config.Source, h config.HTTP, lifecycle graphcalendar.LifecycleFunc) (*Live, error) {
	webhooks, err := Webhooks(sources, h, lifecycle)
	if err != nil {
		return nil, err
	}
	return &Live{http: h, lifecycle: lifecycle, set: ingest.NewSourceSet(webhooks), config: slices.Clone(sources)}, nil
}

// Set is what the HTTP front serves (ingest.Options.Live).
func (l *Live) Set() *ingest.SourceSet { return l.set }

// Reload swaps in the webhook sources of sources and returns how many
// there are. Adding, removing or moving a source (name, type, tenant or
// path) is refused, and so is a source whose adapter can not be built:
// nothing changes then.
func (l *Live) Reload(sources []config.Source) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !Same(l.config, sources) {
		return 0, errors.New("sources were added, removed or moved (name, type, tenant or path); restart the bridge for that")
	}
	webhooks, err := Webhooks(sources, l.http, l.lifecycle)
	if err != nil {
		return 0, err
	}
	l.set.Replace(webhooks)
	l.config = slices.Clone(sources)
	return len(webhooks), nil
}

// Describe lists the sources as last loaded, for the admin API.
func (l *Live) Describe() []admin.Source {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Describe(l.config)
}
