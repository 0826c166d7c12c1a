// Package catalog knows every output type and builds its output from its
// configuration, so that nothing outside outputs/ names an output type.
package catalog

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/outputs"
	natsout "github.com/presence-bridge/presence-bridge/outputs/nats"
	sipout "github.com/presence-bridge/presence-bridge/outputs/sip"
	"github.com/presence-bridge/presence-bridge/outputs/webhook"
)

// Config is what an output is built from.
type Config struct {
	// Name is the output's name.
	Name string
	// Type is the output type (nats, sip, webhook).
	Type string
	// Settings is the type's own configuration: a natsout.Config for
	// nats, a sipout.Config for sip, a webhook.Config for webhook
	// (config.Output.Settings).
	Settings any
}

// Deps are what outputs need beyond their configuration.
type Deps struct {
	// JetStream is the bridge's JetStream connection (nats outputs; the
	// queue of webhook outputs).
	JetStream jetstream.JetStream
	// DeadLetter stores a webhook output's dead letters in the bridge's
	// dead-letter stream; nil logs them only.
	DeadLetter webhook.DeadLetterFunc
	// Logger is slog.Default when nil.
	Logger *slog.Logger
}

var builders = map[string]func(context.Context, Config, Deps) (outputs.Output, error){
	"nats": func(ctx context.Context, c Config, d Deps) (outputs.Output, error) {
		settings, ok := c.Settings.(natsout.Config)
		if !ok {
			return nil, fmt.Errorf("nats output %s: settings are %T, not nats.Config", c.Name, c.Settings)
		}
		settings.Name = c.Name
		return natsout.New(ctx, d.JetStream, settings)
	},
	"webhook": func(ctx context.Context, c Config, d Deps) (outputs.Output, error) {
		settings, ok := c.Settings.(webhook.Config)
		if !ok {
			return nil, fmt.Errorf("webhook output %s: settings are %T, not webhook.Config", c.Name, c.Settings)
		}
		settings.Name = c.Name
		return webhook.New(ctx, settings, webhook.Options{JetStream: d.JetStream, DeadLetter: d.DeadLetter, Logger: d.Logger})
	},
	"sip": func(_ context.Context, c Config, d Deps) (outputs.Output, error) {
		settings, ok := c.Settings.(sipout.Config)
		if !ok {
			return nil, fmt.Errorf("sip output %s: settings are %T, not sip.Config", c.Name, c.Settings)
		}
		settings.Name = c.Name
		return sipout.New(settings, d.Logger)
	},
}

// New builds the output of type cfg.Type.
func New(ctx context.Context, cfg Config, deps Deps) (outputs.Output, error) {
	build, ok := builders[cfg.Type]
	if !ok {
		return nil, fmt.Errorf("output %s: no output type %q (known: %v)", cfg.Name, cfg.Type, Types())
	}
	return build(ctx, cfg, deps)
}

// Types lists the output types, sorted.
func Types() []string {
	types := make([]string, 0, len(builders))
	for t := range builders {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}
