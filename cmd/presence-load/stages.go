package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Where an event waits between the 202 and Graph: in the apply stage
// (accepted, not yet applied to the user's state) or in a writer's queue
// (applied, the user waiting for a call).
const (
	acceptedMetric = "presence_bridge_webhook_requests_total"
	backlogMetric  = "presence_bridge_writer_backlog"
)

// stages is the most that waited at each stage in the samples of one run.
type stages struct {
	samples int
	// behind is the most events accepted but not yet applied, backlog
	// the most users (over all tenants) waiting for a writer's call.
	behind, backlog float64
}

// stageSample reads one /metrics page: the events accepted but not yet
// processed, counted from the page before the run (base), and the
// writers' backlog.
func stageSample(text, base []byte) (behind, backlog float64, err error) {
	var counts [2][2]float64 // accepted and processed, before the run and now
	for i, page := range [][]byte{base, text} {
		acc, err := sumByLabel(page, acceptedMetric, "status")
		if err != nil {
			return 0, 0, err
		}
		done, _, err := processed(page)
		if err != nil {
			return 0, 0, err
		}
		counts[i] = [2]float64{acc["202"], done}
	}
	b, err := sumByLabel(text, backlogMetric, "")
	if err != nil {
		return 0, 0, err
	}
	behind = (counts[1][0] - counts[0][0]) - (counts[1][1] - counts[0][1])
	return max(behind, 0), b[""], nil
}

// add takes in one sample.
func (s *stages) add(behind, backlog float64) {
	s.samples++
	s.behind = max(s.behind, behind)
	s.backlog = max(s.backlog, backlog)
}

func (s stages) print(w io.Writer, rate float64) {
	if s.samples == 0 {
		return
	}
	wait := ""
	if rate > 0 {
		wait = fmt.Sprintf(" (%s of arrivals)", ms(time.Duration(s.behind/rate*float64(time.Second))))
	}
	fmt.Fprintf(w, "waiting, most in %d samples: %.0f events accepted and not yet applied%s; %.0f users queued for a Graph call\n",
		s.samples, s.behind, wait, s.backlog)
}

// sampleStages reads url every interval until stop is closed, comparing
// each page with base.
func sampleStages(ctx context.Context, client *http.Client, url string, base []byte, interval time.Duration, stop <-chan struct{}) (stages, error) {
	var s stages
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-stop:
			return s, nil
		case <-t.C:
		}
		page, err := get(ctx, client, url)
		if err != nil {
			return s, err
		}
		behind, backlog, err := stageSample(page, base)
		if err != nil {
			return s, err
		}
		s.add(behind, backlog)
	}
}
