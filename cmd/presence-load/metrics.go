package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// processedMetric counts the events the bridge took from JetStream, by
// outcome: applied, retry or dead_letter. A retried event is counted again
// when it comes back, so only the other outcomes say an event is done.
const (
	processedMetric = "presence_bridge_events_processed_total"
	outcomeLabel    = "outcome"
	outcomeRetry    = "retry"
)

// maxMetricsBody bounds what is read from a /metrics answer.
const maxMetricsBody = 16 << 20

// sumByLabel sums the samples of the metric name in a Prometheus text
// exposition, grouped by the value of label ("" for samples without it).
// Other metrics' lines are skipped unread; a malformed sample of name is an
// error.
func sumByLabel(text []byte, name, label string) (map[string]float64, error) {
	sums := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), maxMetricsBody)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		end := strings.IndexAny(s, "{ \t")
		if end < 0 || s[:end] != name {
			continue
		}
		labels, rest, err := parseLabels(s[end:])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 || len(fields) > 2 {
			return nil, fmt.Errorf("line %d: want a value and an optional timestamp", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || math.IsNaN(v) {
			return nil, fmt.Errorf("line %d: bad value %q", line, fields[0])
		}
		sums[labels[label]] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return sums, nil
}

// parseLabels reads an optional {name="value",...} block at the start of
// s and returns the labels and what follows the block.
func parseLabels(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	if !strings.HasPrefix(s, "{") {
		return labels, s, nil
	}
	s = s[1:]
	for {
		s = strings.TrimLeft(s, " \t,")
		if strings.HasPrefix(s, "}") {
			return labels, s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, "", errors.New("bad label")
		}
		key := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " \t")
		if !strings.HasPrefix(s, `"`) {
			return nil, "", fmt.Errorf("label %s: value not quoted", key)
		}
		var value strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					c = '\n'
				default:
					c = s[i]
				}
			}
			value.WriteByte(c)
		}
		if i >= len(s) {
			return nil, "", fmt.Errorf("label %s: unterminated value", key)
		}
		labels[key] = value.String()
		s = s[i+1:]
	}
}

// processed returns how many events the bridge has finished with (every
// outcome but retry) and the count of each outcome.
func processed(text []byte) (float64, map[string]float64, error) {
	by, err := sumByLabel(text, processedMetric, outcomeLabel)
	if err != nil {
		return 0, nil, err
	}
	done := 0.0
	for outcome, n := range by {
		if outcome != outcomeRetry {
			done += n
		}
	}
	return done, by, nil
}

// scrape reads a /metrics page and returns processed's answer.
func scrape(ctx context.Context, client *http.Client, url string) (float64, map[string]float64, error) {
	body, err := get(ctx, client, url)
	if err != nil {
		return 0, nil, err
	}
	return processed(body)
}

// get reads a /metrics page.
func get(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBody))
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get metrics: status %d", resp.StatusCode)
	}
	return body, nil
}

// The bridge's end-to-end latency: accepted (202) until Graph answered the
// call that carried the event's effect, and what became of the events that
// needed no call.
const (
	eventToGraphBuckets = "presence_bridge_event_to_graph_seconds_bucket"
	eventOutcomesMetric = "presence_bridge_event_to_graph_outcomes_total"
)

// graphLatency is what the bridge's histogram says of one run.
type graphLatency struct {
	timed    float64            // events observed in the histogram
	p50, p99 time.Duration      // interpolated within their buckets
	outcomes map[string]float64 // every event's fate, by outcome
	buckets  []bucket           // cumulative, by bound
}

// bucket is one cumulative histogram bucket.
type bucket struct {
	le    float64 // upper bound in seconds, +Inf for the last
	count float64
}

// parseGraphLatency reads the histogram and the outcomes from a /metrics
// page.
func parseGraphLatency(text []byte) (graphLatency, error) {
	byLE, err := sumByLabel(text, eventToGraphBuckets, "le")
	if err != nil {
		return graphLatency{}, err
	}
	outcomes, err := sumByLabel(text, eventOutcomesMetric, outcomeLabel)
	if err != nil {
		return graphLatency{}, err
	}
	g := graphLatency{outcomes: outcomes}
	for le, n := range byLE {
		bound, err := strconv.ParseFloat(le, 64)
		if err != nil {
			return graphLatency{}, fmt.Errorf("%s: bad le %q", eventToGraphBuckets, le)
		}
		g.buckets = append(g.buckets, bucket{bound, n})
	}
	slices.SortFunc(g.buckets, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	if len(g.buckets) > 0 {
		g.timed = g.buckets[len(g.buckets)-1].count
	}
	g.p50, g.p99 = g.quantile(0.50), g.quantile(0.99)
	return g, nil
}

// quantile interpolates the q-quantile linearly within its bucket, as
// Prometheus's histogram_quantile does; in the +Inf bucket it answers the
// highest finite bound.
func (g graphLatency) quantile(q float64) time.Duration {
	if g.timed == 0 {
		return 0
	}
	rank := q * g.timed
	lower, below := 0.0, 0.0
	for _, b := range g.buckets {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return seconds(lower)
			}
			if b.count == below {
				return seconds(b.le)
			}
			return seconds(lower + (b.le-lower)*(rank-below)/(b.count-below))
		}
		lower, below = b.le, b.count
	}
	return seconds(lower)
}

// within returns the share of timed events that took at most d, d being
// one of the histogram's bounds (false when it is not).
func (g graphLatency) within(d time.Duration) (float64, bool) {
	for _, b := range g.buckets {
		if b.le == d.Seconds() {
			if g.timed == 0 {
				return 0, true
			}
			return b.count / g.timed, true
		}
	}
	return 0, false
}

// settled is how many events have a known fate.
func (g graphLatency) settled() float64 {
	n := 0.0
	for _, v := range g.outcomes {
		n += v
	}
	return n
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// waitGraphLatency polls the bridge's metrics until every one of accepted
// events has a known fate (reached Graph, or needed no call), for at most
// wait, and returns the histogram's figures.
func waitGraphLatency(ctx context.Context, client *http.Client, url string, accepted int64, wait time.Duration) (graphLatency, error) {
	deadline := time.Now().Add(wait)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return graphLatency{}, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return graphLatency{}, fmt.Errorf("get metrics: %w", err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBody))
		resp.Body.Close()
		if err != nil {
			return graphLatency{}, fmt.Errorf("read metrics: %w", err)
		}
		g, err := parseGraphLatency(body)
		if err != nil {
			return graphLatency{}, err
		}
		if g.settled() >= float64(accepted) {
			return g, nil
		}
		if time.Now().After(deadline) {
			return g, fmt.Errorf("%w: %.0f of %d events reached Graph or needed no call within %s", errNotProcessed, g.settled(), accepted, wait)
		}
		select {
		case <-ctx.Done():
			return g, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
