//go:build linux

package bridge_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// A pacer wakes its caller at every tick of a fixed period from when it
// was made, through a kernel timer (timerfd) read by Go's network poller:
// that wakes within microseconds, where a Go timer may wake a millisecond
// late (the poller's wait is in whole milliseconds), which an open-loop
// load would count against the server it measures.
type pacer struct {
	timer  *os.File
	start  time.Time
	period time.Duration
	ticked uint64
}

func newPacer(period time.Duration) (*pacer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	every := unix.NsecToTimespec(period.Nanoseconds())
	start := time.Now()
	if err := unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Interval: every, Value: every}, nil); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	// A non-blocking descriptor: os.File reads it through the poller.
	return &pacer{timer: os.NewFile(uintptr(fd), "pacer"), start: start, period: period}, nil
}

// until waits for tick i (tick 0 is the start) and returns when it was
// due.
func (p *pacer) until(i int) (time.Time, error) {
	var count [8]byte
	for p.ticked < uint64(i) {
		if _, err := p.timer.Read(count[:]); err != nil {
			return time.Time{}, fmt.Errorf("pacer: %w", err)
		}
		p.ticked += binary.NativeEndian.Uint64(count[:])
	}
	return p.start.Add(time.Duration(i) * p.period), nil
}

func (p *pacer) stop() { p.timer.Close() }
