package writer

import (
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/graphclient/graphlimits"
)

// The writer tests' fixtures: a start time, the pairs and rules of a
// usual configuration, and a call event minutes after t0.
var (
	t0       = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	inACall  = &adapters.Pair{Availability: "Busy", Activity: "InACall"}
	inConf   = &adapters.Pair{Availability: "Busy", Activity: "InAConferenceCall"}
	dnd      = &adapters.Pair{Availability: "DoNotDisturb", Activity: "Presenting"}
	awayPair = &adapters.Pair{Availability: "Away", Activity: "Away"}
	rules    = state.Rules{
		Call: inACall, ConferenceCall: inConf, Meeting: inConf, MeetingShowAs: []string{"busy", "oof"},
		Priority: []string{"conference", "call", "meeting", "presence"}, MaxCallDuration: 4 * time.Hour,
		SourceLapse: map[string]time.Duration{"flaky": 10 * time.Minute},
	}
)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func tp(t time.Time) *time.Time { return &t }

func call(source, id, st string, min int, conference bool) adapters.Event {
	return adapters.Event{ID: id + st, Source: source, Type: "call", CallID: id, State: st, OccurredAt: at(min), Conference: conference}
}

// contoso is the tests' tenant with Graph's published budget, the
// configuration's default.
var contoso = TenantOptions{ID: "contoso.example", Budget: graphlimits.PresenceRequests, Window: graphlimits.PresenceWindow}

// withDefaults fills the settings a test leaves out with the
// configuration's defaults (config.Default), as the bridge passes them.
func withDefaults(o Options) Options {
	d := config.Default()
	for _, f := range []struct {
		set *time.Duration
		def time.Duration
	}{
		{&o.Expiration, d.Presence.Expiration}, {&o.LeaseTTL, d.Presence.LeaseTTL},
		{&o.BreakerTimeout, d.Graph.Breaker.OpenTimeout},
		{&o.RetryDelay, d.Graph.Retry.MinDelay}, {&o.MaxRetryDelay, d.Graph.Retry.MaxDelay},
		{&o.RefusalProbe, d.Graph.RefusalProbe.First}, {&o.RefusalProbeMax, d.Graph.RefusalProbe.Max},
		{&o.StatusExpiry, d.Presence.StatusMessages.Expiry},
	} {
		if *f.set == 0 {
			*f.set = f.def
		}
	}
	if o.Replicas == 0 {
		o.Replicas = d.NATS.Replicas
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = d.Graph.Breaker.Failures
	}
	o.Tenants = append([]TenantOptions(nil), o.Tenants...)
	for i, t := range o.Tenants {
		if t.Budget == 0 {
			o.Tenants[i].Budget = contoso.Budget
		}
		if t.Window == 0 {
			o.Tenants[i].Window = contoso.Window
		}
	}
	return o
}
