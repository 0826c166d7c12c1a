package eventlog

import (
	"context"
	"fmt"
)

// ConsumerState is the durable consumer's backlog as JetStream reports it.
type ConsumerState struct {
	// Pending is how many stored events have not been delivered yet;
	// AckPending how many were delivered and not settled.
	Pending, AckPending uint64
}

// ConsumerState reads the durable consumer's backlog, for metrics.
func (q *Queue) ConsumerState(ctx context.Context) (ConsumerState, error) {
	c, err := q.current()
	if err != nil {
		return ConsumerState{}, err
	}
	consumer, err := c.events.Consumer(ctx, q.cfg.Consumer)
	if err != nil {
		return ConsumerState{}, fmt.Errorf("consumer %s: %w", q.cfg.Consumer, err)
	}
	info, err := consumer.Info(ctx)
	if err != nil {
		return ConsumerState{}, fmt.Errorf("consumer %s info: %w", q.cfg.Consumer, err)
	}
	return ConsumerState{Pending: info.NumPending, AckPending: uint64(max(info.NumAckPending, 0))}, nil
}

// DeadLetterCount returns how many records the dead-letter stream holds.
func (q *Queue) DeadLetterCount(ctx context.Context) (uint64, error) {
	stream, err := q.deadLetters(ctx)
	if err != nil {
		return 0, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("dead-letter stream info: %w", err)
	}
	return info.State.Msgs, nil
}
