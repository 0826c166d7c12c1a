// Package catalog knows every source type and builds its adapter, so that
// nothing outside adapters/ names a vendor.
package catalog

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/caldav"
	"github.com/presence-bridge/presence-bridge/adapters/generic"
	"github.com/presence-bridge/presence-bridge/adapters/graphcalendar"
	"github.com/presence-bridge/presence-bridge/adapters/ringcentral"
	"github.com/presence-bridge/presence-bridge/adapters/sipdialog"
	"github.com/presence-bridge/presence-bridge/adapters/twilio"
	"github.com/presence-bridge/presence-bridge/adapters/webex"
	"github.com/presence-bridge/presence-bridge/adapters/zoomphone"
)

// Deps are what some adapters need beyond their configuration.
type Deps struct {
	// CalendarLifecycle receives graphcalendar sources' lifecycle
	// notifications (the bridge's subscription manager); optional.
	CalendarLifecycle graphcalendar.LifecycleFunc
}

var webhooks = map[string]func(adapters.SourceConfig, Deps) (adapters.Adapter, error){
	"generic":     func(c adapters.SourceConfig, _ Deps) (adapters.Adapter, error) { return generic.New(c) },
	"twilio":      func(c adapters.SourceConfig, _ Deps) (adapters.Adapter, error) { return twilio.New(c) },
	"zoomphone":   func(c adapters.SourceConfig, _ Deps) (adapters.Adapter, error) { return zoomphone.New(c) },
	"webex":       func(c adapters.SourceConfig, _ Deps) (adapters.Adapter, error) { return webex.New(c) },
	"ringcentral": func(c adapters.SourceConfig, _ Deps) (adapters.Adapter, error) { return ringcentral.New(c) },
	"graphcalendar": func(c adapters.SourceConfig, d Deps) (adapters.Adapter, error) {
		a, err := graphcalendar.New(c)
		if err != nil {
			return nil, err
		}
		if d.CalendarLifecycle != nil {
			a.OnLifecycle(d.CalendarLifecycle)
		}
		return a, nil
	},
}

// ReadsCalendar reports whether events of sources of this type may name a
// calendar event for the apply stage to read from Graph
// (adapters.Event.CalendarEvent); CalendarMeeting makes the meeting of it.
func ReadsCalendar(sourceType string) bool { return sourceType == "graphcalendar" }

// CalendarMeeting is the meeting ref (an event naming a calendar event)
// stands for, given the event as read: found false when Graph no longer
// has it.
func CalendarMeeting(ref adapters.Event, m graphcalendar.Meeting, found bool) (adapters.Event, error) {
	if !found {
		return graphcalendar.Ended(ref), nil
	}
	return graphcalendar.Scheduled(ref, m)
}

// Webhook builds the adapter of a webhook source of type cfg.Type.
func Webhook(cfg adapters.SourceConfig, deps Deps) (adapters.Adapter, error) {
	build, ok := webhooks[cfg.Type]
	if !ok {
		return nil, fmt.Errorf("no adapter for type %q (known: %v)", cfg.Type, Types())
	}
	return build(cfg, deps)
}

// RunnerConfig is what a connect-out source is built from.
type RunnerConfig struct {
	// Name is the source's name, stamped on its events.
	Name string
	// Type is the source type (sipdialog, caldav).
	Type string
	// Settings is the type's own configuration, secrets resolved: a
	// sipdialog.Config or a caldav.Config (config.Source.Settings).
	Settings any
	// Logger receives the source's logs; nil means slog.Default().
	Logger *slog.Logger
}

var runners = map[string]func(RunnerConfig) (adapters.Runner, error){
	"sipdialog": func(c RunnerConfig) (adapters.Runner, error) {
		settings, ok := c.Settings.(sipdialog.Config)
		if !ok {
			return nil, fmt.Errorf("sipdialog source %s: settings are %T, not sipdialog.Config", c.Name, c.Settings)
		}
		return sipdialog.New(c.Name, settings, c.Logger)
	},
	"caldav": func(c RunnerConfig) (adapters.Runner, error) {
		settings, ok := c.Settings.(caldav.Config)
		if !ok {
			return nil, fmt.Errorf("caldav source %s: settings are %T, not caldav.Config", c.Name, c.Settings)
		}
		settings.Name, settings.Logger = c.Name, c.Logger
		return caldav.New(settings)
	},
}

// Runner builds a fresh runner of a connect-out source of type cfg.Type.
// A runner is built for each time the source is run.
func Runner(cfg RunnerConfig) (adapters.Runner, error) {
	build, ok := runners[cfg.Type]
	if !ok {
		return nil, fmt.Errorf("no runner for type %q (known: %v)", cfg.Type, RunnerTypes())
	}
	return build(cfg)
}

// Watched reports, for a runner that keeps a subscription per entity
// (sipdialog), how many entities it watches now and how many it should;
// ok is false for other runners.
func Watched(r adapters.Runner) (live, total int, ok bool) {
	src, ok := r.(*sipdialog.Source)
	if !ok {
		return 0, 0, false
	}
	for _, e := range src.Status() {
		if e.Subscribed {
			live++
		}
		total++
	}
	return live, total, true
}

// ConnectsOut reports whether sources of this type are runners rather
// than webhooks.
func ConnectsOut(sourceType string) bool {
	_, ok := runners[sourceType]
	return ok
}

// RunnerTypes lists the connect-out source types, sorted.
func RunnerTypes() []string { return sortedKeys(runners) }

// Types lists the source types, webhooks and runners, sorted.
func Types() []string {
	types := make([]string, 0, len(webhooks)+len(runners))
	for t := range webhooks {
		types = append(types, t)
	}
	for t := range runners {
		types = append(types, t)
	}
	sort.Strings(types)
	return slices.Clip(types)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
