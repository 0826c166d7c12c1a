package apply

import (
	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// FromConfig returns o with cfg's settings for the apply stage: each
// source's tenant and identity hints, the events' subject prefix, the
// redelivery delays, the future skew allowed, the lanes and the ack wait.
func FromConfig(cfg *config.Config, o Options) Options {
	o.Tenants, o.Identity = map[string]string{}, map[string]adapters.IdentityHints{}
	for _, s := range cfg.Sources {
		o.Tenants[s.Name] = s.Tenant
		o.Identity[s.Name] = s.Identity
	}
	o.SubjectPrefix = cfg.NATS.SubjectPrefix
	o.MinDelay, o.MaxDelay = cfg.Graph.Retry.MinDelay, cfg.Graph.Retry.MaxDelay
	o.MaxFutureSkew = cfg.HTTP.MaxFutureSkew
	o.Lanes, o.LaneDepth, o.AckWait = cfg.Worker.Lanes, cfg.Worker.LaneDepth, cfg.NATS.AckWait
	return o
}
