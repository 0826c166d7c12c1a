package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestStageSample(t *testing.T) {
	base := `presence_bridge_webhook_requests_total{source="bench",status="202"} 10
presence_bridge_webhook_requests_total{source="bench",status="401"} 3
presence_bridge_events_processed_total{source="bench",outcome="applied"} 8
presence_bridge_events_processed_total{source="bench",outcome="retry"} 5
presence_bridge_writer_backlog{tenant="a"} 9
`
	for _, tc := range []struct {
		name            string
		page            string
		behind, backlog float64
		err             bool
	}{
		{"behind", `presence_bridge_webhook_requests_total{source="bench",status="202"} 60
presence_bridge_webhook_requests_total{source="bench-1",status="202"} 50
presence_bridge_webhook_requests_total{source="bench",status="401"} 30
presence_bridge_events_processed_total{source="bench",outcome="applied"} 50
presence_bridge_events_processed_total{source="bench",outcome="dead_letter"} 2
presence_bridge_events_processed_total{source="bench",outcome="retry"} 90
presence_bridge_writer_backlog{tenant="a"} 3
presence_bridge_writer_backlog{tenant="b"} 4
`, 100 - 44, 7, false},
		{"caught up", `presence_bridge_webhook_requests_total{source="bench",status="202"} 20
presence_bridge_events_processed_total{source="bench",outcome="applied"} 18
`, 0, 0, false},
		{"malformed", `presence_bridge_writer_backlog{tenant="a"} x
`, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			behind, backlog, err := stageSample([]byte(tc.page), []byte(base))
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			if behind != tc.behind || backlog != tc.backlog {
				t.Fatalf("behind %v backlog %v, want %v and %v", behind, backlog, tc.behind, tc.backlog)
			}
		})
	}
}

// TestSampleStagesKeepsTheMost serves pages that grow and shrink and
// checks that the run's figure is the most seen.
func TestSampleStagesKeepsTheMost(t *testing.T) {
	pages := []string{
		"presence_bridge_webhook_requests_total{status=\"202\"} 5\npresence_bridge_writer_backlog{tenant=\"a\"} 1\n",
		"presence_bridge_webhook_requests_total{status=\"202\"} 40\npresence_bridge_events_processed_total{outcome=\"applied\"} 10\npresence_bridge_writer_backlog{tenant=\"a\"} 6\n",
		"presence_bridge_webhook_requests_total{status=\"202\"} 50\npresence_bridge_events_processed_total{outcome=\"applied\"} 48\npresence_bridge_writer_backlog{tenant=\"a\"} 2\n",
	}
	served := make(chan struct{}, len(pages))
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(pages[min(int(n.Add(1))-1, len(pages)-1)]))
		select {
		case served <- struct{}{}:
		default: // served again after the last page, before stop was seen
		}
	}))
	defer srv.Close()
	stop := make(chan struct{})
	done := make(chan stages, 1)
	go func() {
		s, err := sampleStages(context.Background(), srv.Client(), srv.URL, nil, time.Millisecond, stop)
		if err != nil {
			t.Error(err)
		}
		done <- s
	}()
	for range pages {
		<-served
	}
	close(stop)
	s := <-done
	if s.samples < len(pages) || s.behind != 30 || s.backlog != 6 {
		t.Fatalf("got %+v, want at least %d samples, at most 30 behind and 6 queued", s, len(pages))
	}
	var out bytes.Buffer
	s.print(&out, 100)
	if want := "30 events accepted and not yet applied (300.00 ms of arrivals); 6 users queued"; !strings.Contains(out.String(), want) {
		t.Fatalf("printed %q, want it to contain %q", out.String(), want)
	}
}
