package writer

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/presence-bridge/presence-bridge/bridge/eventlog"
)

// StoreDeadLetters returns an Options.DeadLetter that stores each change
// Graph refused in q's dead-letter stream, with the event that asked for
// it, so that it can be listed and replayed; refused, when set, is told
// the event's source of each one stored.
func StoreDeadLetters(q *eventlog.Queue, refused func(source string)) func(context.Context, DeadLetter) error {
	return func(ctx context.Context, d DeadLetter) error {
		record := eventlog.DeadLetter{Reason: d.Reason + " for user " + d.UserID, GraphError: d.GraphError, At: d.At.UTC(), Data: []byte("null")}
		if d.Event != nil {
			data, err := json.Marshal(d.Event)
			if err != nil {
				return fmt.Errorf("encode dead-lettered event: %w", err)
			}
			record.Data, record.Source, record.Subject = data, d.Event.Source, q.Subject(d.Event.Source)
		}
		if err := q.PublishDeadLetter(ctx, record); err != nil {
			return err
		}
		if refused != nil {
			refused(record.Source)
		}
		return nil
	}
}
