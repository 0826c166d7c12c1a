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
// configuration). A Runner's event ids must be unique per observed change,
// even a change back to an earlier state, and what it publishes again
// (after a failed publish, a restart or a takeover) must change nothing
// when applied.
type Runner interface {
	Run(ctx context.Context, publish Publish) error
}
