// Package graphlimits holds the limits Microsoft Graph publishes for its
// presence API, so that the client, the bridge and the emulator keep one
// copy of each.
package graphlimits

import "time"

// MaxIDsPerLookup is how many user ids one getPresencesByUserId request
// may name.
const MaxIDsPerLookup = 650

// PresenceRequests per PresenceWindow is Microsoft's published presence
// limit since September 2025: 10,000 requests per 30 s per application per
// tenant (raised from 1,500; some reference pages still say 1,500). It is
// the bridge's default write budget per tenant; a tenant Graph still holds
// to less is learned from its 429s.
const (
	PresenceRequests = 10000
	PresenceWindow   = 30 * time.Second
)
