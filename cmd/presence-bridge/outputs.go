package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
)

// runOutputs lists a running bridge's outputs with their health
// (GET /v1/admin/outputs).
func runOutputs(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("presence-bridge outputs", flag.ContinueOnError)
	f := addClientFlags(fs, "table", "json")
	words, code, ok := parseFlags(fs, args, e)
	if !ok {
		return code
	}
	if !noWords(e, "outputs", words) {
		return exitUsage
	}
	c, err := f.client(e, "table", "json")
	if err != nil {
		fmt.Fprintln(e.stderr, "error:", err)
		return exitUsage
	}
	var answer struct {
		Outputs []json.RawMessage `json:"outputs"`
	}
	if err := c.getJSON(ctx, "/v1/admin/outputs", &answer); err != nil {
		return failed(e, err)
	}
	if answer.Outputs == nil {
		answer.Outputs = []json.RawMessage{}
	}
	if f.output == "json" {
		return printJSON(e, answer.Outputs)
	}
	if err := writeTable(e.stdout, answer.Outputs); err != nil {
		return failed(e, err)
	}
	return exitOK
}
