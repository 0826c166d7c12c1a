package adapters

import "context"

// Publish stores canonical events in the bridge's event log. It returns
// only after they are stored (or with the reason they were not), exactly as
// a webhook's 202 waits for the PubAck.
type Publish func(ctx context.Context, events []Event) error

// Runner is a source that connects out to its system (a SIP dialog
// subscription, a CalDAV poll) instead of receiving webhooks. Run keeps
// the connection alive, reconnecting with backoff, until ctx ends; it
// returns nil then, and an error only when it can never work (bad
// configuration). A Runner makes its event ids deterministic, so that two
// copies of one observation are stored once.
type Runner interface {
	Run(ctx context.Context, publish Publish) error
}
