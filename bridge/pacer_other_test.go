//go:build !linux

package bridge_test

import "time"

// A pacer wakes its caller at every tick of a fixed period from when it
// was made. Elsewhere than on Linux it sleeps on Go's timers.
type pacer struct {
	start  time.Time
	period time.Duration
}

func newPacer(period time.Duration) (*pacer, error) {
	return &pacer{start: time.Now(), period: period}, nil
}

// until waits for tick i (tick 0 is the start) and returns when it was
// due.
func (p *pacer) until(i int) (time.Time, error) {
	at := p.start.Add(time.Duration(i) * p.period)
	// Real time must pass: the load is paced.
	time.Sleep(time.Until(at))
	return at, nil
}

func (p *pacer) stop() {}
