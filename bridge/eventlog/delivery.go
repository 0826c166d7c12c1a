package eventlog

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// replayIDPrefix starts the message id of a replayed dead letter
// (ReplayDeadLetter).
const replayIDPrefix = "replay:"

// ObserveDelivery wraps a Consume handler to tell redelivered of each
// event JetStream delivers again, and stored of when each first delivered
// event was stored, by source: events bus publishers put on NATS
// themselves pass no ingest, so the first delivery is where the bridge
// first sees them. A replayed dead letter is no new event of its source.
func (q *Queue) ObserveDelivery(handle func(jetstream.Msg), redelivered func(source string), stored func(source string, at time.Time)) func(jetstream.Msg) {
	prefix := q.cfg.SubjectPrefix + "."
	return func(msg jetstream.Msg) {
		if md, err := msg.Metadata(); err == nil {
			source, _, _ := strings.Cut(strings.TrimPrefix(msg.Subject(), prefix), ".")
			switch {
			case md.NumDelivered > 1:
				redelivered(source)
			case !strings.HasPrefix(msg.Headers().Get(jetstream.MsgIDHeader), replayIDPrefix):
				stored(source, md.Timestamp)
			}
		}
		handle(msg)
	}
}
