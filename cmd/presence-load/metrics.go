package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("metrics request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("get metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBody))
	if err != nil {
		return 0, nil, fmt.Errorf("read metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("get metrics: status %d", resp.StatusCode)
	}
	return processed(body)
}
