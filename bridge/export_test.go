package bridge

import "github.com/presence-bridge/presence-bridge/bridge/engine"

// SetClock makes b's engine tell time by c (budgets, pauses, timers); the
// leases stay on real time. Call it before Start.
func SetClock(b *Bridge, c engine.Clock) { b.clock = c }
