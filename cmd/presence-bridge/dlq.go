package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// deadLetter is what the CLI reads of a dead letter; printing with -o json
// keeps every field the bridge sent.
type deadLetter struct {
	Seq        uint64    `json:"seq"`
	Source     string    `json:"source"`
	Reason     string    `json:"reason"`
	GraphError string    `json:"graphError"`
	At         time.Time `json:"at"`
	raw        json.RawMessage
}

// dlqFilter selects dead letters by source, reason and age.
type dlqFilter struct {
	source, reason, since string
	after                 time.Time
}

func addFilterFlags(fs *flag.FlagSet) *dlqFilter {
	f := &dlqFilter{}
	fs.StringVar(&f.source, "source", "", "only dead letters of this source")
	fs.StringVar(&f.reason, "reason", "", "only dead letters whose reason or Graph error contains this text (any case)")
	fs.StringVar(&f.since, "since", "", "only dead letters since a duration ago (1h, 30m) or a time (2026-11-23T10:00:00Z)")
	return f
}

// parse checks --since against now.
func (f *dlqFilter) parse(now time.Time) error {
	if f.since == "" {
		return nil
	}
	if d, err := time.ParseDuration(f.since); err == nil && d >= 0 {
		f.after = now.Add(-d)
		return nil
	}
	t, err := time.Parse(time.RFC3339, f.since)
	if err != nil {
		return fmt.Errorf("--since must be a duration such as 1h or a time such as 2026-11-23T10:00:00Z, not %q", f.since)
	}
	f.after = t
	return nil
}

func (f *dlqFilter) match(d deadLetter) bool {
	if f.source != "" && d.Source != f.source {
		return false
	}
	if f.reason != "" && !strings.Contains(strings.ToLower(d.Reason+" "+d.GraphError), strings.ToLower(f.reason)) {
		return false
	}
	return f.after.IsZero() || !d.At.Before(f.after)
}

// pageSize is how many dead letters one admin call returns (its maximum);
// maxPages bounds a listing at a million.
const (
	pageSize = 1000
	maxPages = 1000
)

// listDeadLetters reads every dead letter, page by page, and keeps those
// f matches.
func listDeadLetters(ctx context.Context, c *adminClient, f *dlqFilter) ([]deadLetter, error) {
	var out []deadLetter
	from := uint64(0)
	for range maxPages {
		var page struct {
			DeadLetters []json.RawMessage `json:"deadLetters"`
		}
		if err := c.getJSON(ctx, fmt.Sprintf("/v1/admin/deadletters?from=%d&limit=%d", from, pageSize), &page); err != nil {
			return nil, err
		}
		for _, raw := range page.DeadLetters {
			var d deadLetter
			if err := json.Unmarshal(raw, &d); err != nil {
				return nil, fmt.Errorf("a dead letter is not the JSON expected: %w", err)
			}
			d.raw = raw
			if f.match(d) {
				out = append(out, d)
			}
			from = max(from, d.Seq+1)
		}
		if len(page.DeadLetters) < pageSize {
			break
		}
	}
	return out, nil
}

// writeDeadLetters writes dead letters as a table.
func writeDeadLetters(w *tabwriter.Writer, list []deadLetter) error {
	fmt.Fprintln(w, "SEQ\tAT\tSOURCE\tREASON\tGRAPH ERROR")
	for _, d := range list {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", d.Seq, d.At.UTC().Format(time.RFC3339), cell(d.Source), cell(d.Reason), cell(d.GraphError))
	}
	return w.Flush()
}

func runDLQList(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("presence-bridge dlq list", flag.ContinueOnError)
	f := addClientFlags(fs, "table", "json")
	filter := addFilterFlags(fs)
	words, code, ok := parseFlags(fs, args, e)
	if !ok {
		return code
	}
	if !noWords(e, "dlq list", words) {
		return exitUsage
	}
	c, err := f.client(e, "table", "json")
	if err == nil {
		err = filter.parse(time.Now())
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "error:", err)
		return exitUsage
	}
	list, err := listDeadLetters(ctx, c, filter)
	if err != nil {
		return failed(e, err)
	}
	if f.output == "json" {
		raws := make([]json.RawMessage, len(list))
		for i, d := range list {
			raws[i] = d.raw
		}
		return printJSON(e, raws)
	}
	if err := writeDeadLetters(tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0), list); err != nil {
		return failed(e, err)
	}
	return exitOK
}

func runDLQReplay(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("presence-bridge dlq replay", flag.ContinueOnError)
	f := addClientFlags(fs, "text")
	filter := addFilterFlags(fs)
	all := fs.Bool("all", false, "replay every dead letter the filters match")
	words, code, ok := parseFlags(fs, args, e)
	if !ok {
		return code
	}
	filtered := filter.source != "" || filter.reason != "" || filter.since != ""
	switch {
	case *all && len(words) > 0:
		fmt.Fprintln(e.stderr, "give sequence numbers or --all, not both")
		return exitUsage
	case !*all && len(words) == 0:
		fmt.Fprintln(e.stderr, "dlq replay needs sequence numbers (see dlq list) or --all")
		return exitUsage
	case !*all && filtered:
		fmt.Fprintln(e.stderr, "--source, --reason and --since go with --all")
		return exitUsage
	}
	var seqs []uint64
	for _, w := range words {
		seq, err := strconv.ParseUint(w, 10, 64)
		if err != nil || seq == 0 {
			fmt.Fprintf(e.stderr, "replay needs sequence numbers, not %q\n", w)
			return exitUsage
		}
		seqs = append(seqs, seq)
	}
	c, err := f.client(e, "text")
	if err == nil {
		err = filter.parse(time.Now())
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "error:", err)
		return exitUsage
	}
	if *all {
		list, err := listDeadLetters(ctx, c, filter)
		if err != nil {
			return failed(e, err)
		}
		for _, d := range list {
			seqs = append(seqs, d.Seq)
		}
	}
	failures := 0
	for _, seq := range seqs {
		if _, err := c.do(ctx, http.MethodPost, "/v1/admin/deadletters/"+strconv.FormatUint(seq, 10)+"/replay"); err != nil {
			fmt.Fprintf(e.stderr, "error: dead letter %d not replayed: %v\n", seq, err)
			failures++
			var api *apiError
			if !errors.As(err, &api) {
				break // the bridge is unreachable: no use trying the rest
			}
			continue
		}
		fmt.Fprintf(e.stdout, "replayed %d\n", seq)
	}
	fmt.Fprintf(e.stdout, "%d replayed, %d failed\n", len(seqs)-failures, failures)
	if failures > 0 {
		return exitFailure
	}
	return exitOK
}

func runDLQPurge(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("presence-bridge dlq purge", flag.ContinueOnError)
	f := addClientFlags(fs, "text")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	words, code, ok := parseFlags(fs, args, e)
	if !ok {
		return code
	}
	if !noWords(e, "dlq purge", words) {
		return exitUsage
	}
	c, err := f.client(e, "text")
	if err != nil {
		fmt.Fprintln(e.stderr, "error:", err)
		return exitUsage
	}
	if !*yes {
		list, err := listDeadLetters(ctx, c, &dlqFilter{})
		if err != nil {
			return failed(e, err)
		}
		fmt.Fprintf(e.stderr, "Delete all %d dead letters for good? Type yes to go on: ", len(list))
		answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "yes" && a != "y" {
			fmt.Fprintln(e.stderr, "\nnothing purged")
			return exitFailure
		}
	}
	body, err := c.do(ctx, http.MethodDelete, "/v1/admin/deadletters")
	if err != nil {
		return failed(e, err)
	}
	var answer struct{ Purged uint64 }
	_ = json.Unmarshal(body, &answer)
	fmt.Fprintf(e.stdout, "purged %d\n", answer.Purged)
	return exitOK
}
