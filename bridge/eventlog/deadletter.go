package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter is the record kept for an event that could not be applied.
type DeadLetter struct {
	// Seq is the record's sequence in the dead-letter stream (set on read).
	Seq uint64 `json:"seq,omitempty"`
	// Subject is where the original message was published.
	Subject string `json:"subject"`
	// Source is the source name the message claimed, if any.
	Source string `json:"source,omitempty"`
	// Data is the original message body, as received.
	Data json.RawMessage `json:"data"`
	// Reason says why it was dead-lettered.
	Reason string `json:"reason"`
	// GraphError is Graph's error, when Graph refused the change.
	GraphError string `json:"graphError,omitempty"`
	// At is when it was dead-lettered.
	At time.Time `json:"at"`
}

// PublishDeadLetter stores d in the dead-letter stream.
func (q *Queue) PublishDeadLetter(ctx context.Context, d DeadLetter) error {
	if !json.Valid(d.Data) {
		quoted, _ := json.Marshal(string(d.Data))
		d.Data = quoted
	}
	body, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode dead letter: %w", err)
	}
	token := d.Source
	if token == "" {
		token = "unknown"
	}
	c, err := q.current()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, q.cfg.PublishTimeout)
	defer cancel()
	if _, err := c.js.Publish(ctx, q.deadLetterSubject()+"."+token, body); err != nil {
		return fmt.Errorf("publish dead letter: %w", q.refused(err))
	}
	q.full.stored(q.log, time.Now())
	return nil
}

// ListDeadLetters returns up to limit records, oldest first, starting at
// sequence from (0 means the first).
func (q *Queue) ListDeadLetters(ctx context.Context, from uint64, limit int) ([]DeadLetter, error) {
	stream, err := q.deadLetters(ctx)
	if err != nil {
		return nil, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream info: %w", err)
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	from = max(from, info.State.FirstSeq, 1)
	var out []DeadLetter
	for seq := from; seq <= info.State.LastSeq && len(out) < limit; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("read dead letter %d: %w", seq, err)
		}
		var d DeadLetter
		if err := json.Unmarshal(msg.Data, &d); err != nil {
			d = DeadLetter{Reason: "unreadable record: " + err.Error()}
		}
		d.Seq = seq
		out = append(out, d)
	}
	return out, nil
}

// ReplayDeadLetter publishes the record's original message again on its
// subject, with a fresh message id so the duplicate window does not drop
// it, and removes the record.
func (q *Queue) ReplayDeadLetter(ctx context.Context, seq uint64) error {
	stream, err := q.deadLetters(ctx)
	if err != nil {
		return err
	}
	msg, err := stream.GetMsg(ctx, seq)
	if err != nil {
		return fmt.Errorf("read dead letter %d: %w", seq, err)
	}
	var d DeadLetter
	if err := json.Unmarshal(msg.Data, &d); err != nil {
		return fmt.Errorf("decode dead letter %d: %w", seq, err)
	}
	replay := &nats.Msg{
		Subject: d.Subject,
		Data:    d.Data,
		Header:  nats.Header{jetstream.MsgIDHeader: []string{replayIDPrefix + q.cfg.DeadLetter + ":" + strconv.FormatUint(seq, 10)}},
	}
	js := q.JetStream()
	if js == nil {
		return fmt.Errorf("%w: replay dead letter %d: NATS is not connected", ErrUnavailable, seq)
	}
	if _, err := js.PublishMsg(ctx, replay); err != nil {
		return fmt.Errorf("replay dead letter %d: %w", seq, q.refused(err))
	}
	if err := stream.DeleteMsg(ctx, seq); err != nil {
		return fmt.Errorf("remove replayed dead letter %d: %w", seq, err)
	}
	return nil
}

// PurgeDeadLetters removes every record and returns how many there were.
func (q *Queue) PurgeDeadLetters(ctx context.Context) (uint64, error) {
	stream, err := q.deadLetters(ctx)
	if err != nil {
		return 0, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("dead-letter stream info: %w", err)
	}
	if err := stream.Purge(ctx); err != nil {
		return 0, fmt.Errorf("purge dead letters: %w", err)
	}
	return info.State.Msgs, nil
}

// deadLetters returns the dead-letter stream.
func (q *Queue) deadLetters(ctx context.Context) (jetstream.Stream, error) {
	c, err := q.current()
	if err != nil {
		return nil, err
	}
	stream, err := c.js.Stream(ctx, q.cfg.DeadLetter)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	return stream, nil
}

// Consume delivers the events stream's messages to handle from the durable
// consumer until stop is called. handle must settle each message.
func (q *Queue) Consume(ctx context.Context, handle func(jetstream.Msg)) (stop func(), err error) {
	c, err := q.current()
	if err != nil {
		return nil, err
	}
	consumer, err := c.events.Consumer(ctx, q.cfg.Consumer)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", q.cfg.Consumer, err)
	}
	cc, err := consumer.Consume(handle, jetstream.PullMaxMessages(256), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			q.log.Debug("consume", "err", err)
		}
	}))
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", q.cfg.Consumer, err)
	}
	return func() {
		cc.Drain()
		select {
		case <-cc.Closed():
		case <-time.After(drainTimeout):
			// After the server restarted, the client may never see the
			// end of the pull it drains: stop without waiting for it.
			// What was not handed over yet is delivered again later
			// (nothing unacked is lost).
			cc.Stop()
		}
	}, nil
}

// drainTimeout bounds how long stopping the consumer waits for its pull
// requests to end.
const drainTimeout = 3 * time.Second
