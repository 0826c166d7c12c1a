package writer

import "github.com/presence-bridge/presence-bridge/bridge/config"

// FromConfig returns o with cfg's settings for the writers: the tenants
// and their budgets, the KV replicas, the sessions' expiration, the lease,
// status messages, the breaker, retries and refusal probes.
func FromConfig(cfg *config.Config, o Options) Options {
	o.Tenants = make([]TenantOptions, len(cfg.Graph.Tenants))
	for i, t := range cfg.Graph.Tenants {
		o.Tenants[i] = TenantOptions{ID: t.ID, Budget: t.Budget, Window: t.BudgetWindow}
	}
	o.Replicas = cfg.NATS.Replicas
	o.Expiration, o.LeaseTTL = cfg.Presence.Expiration, cfg.Presence.LeaseTTL
	o.StatusMessages, o.StatusExpiry = cfg.Presence.StatusMessages.ByKind(), cfg.Presence.StatusMessages.Expiry
	o.BreakerFailures, o.BreakerTimeout = cfg.Graph.Breaker.Failures, cfg.Graph.Breaker.OpenTimeout
	o.RetryDelay, o.MaxRetryDelay = cfg.Graph.Retry.MinDelay, cfg.Graph.Retry.MaxDelay
	o.RefusalProbe, o.RefusalProbeMax = cfg.Graph.RefusalProbe.First, cfg.Graph.RefusalProbe.Max
	return o
}
