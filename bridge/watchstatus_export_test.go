package bridge

import "github.com/presence-bridge/presence-bridge/bridge/watch"

// WatchStatus is every tenant's Teams watch now (nil before the worker
// runs), for the benchmarks' cycle times.
func (b *Bridge) WatchStatus() []watch.Status { return b.teams.Load().Status() }
