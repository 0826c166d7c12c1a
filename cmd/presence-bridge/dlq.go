package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// runDLQ lists, replays or purges dead letters through the running
// bridge's admin endpoints (http.listen, admin.token from the config).
func runDLQ(ctx context.Context, path string, args []string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	if cfg.Admin.Token == "" {
		fmt.Fprintln(stderr, "dlq needs admin.token in the configuration")
		return exitUsage
	}
	base := "http://" + cfg.HTTP.Listen + "/v1/admin/deadletters"
	var method, url string
	switch {
	case len(args) == 1 && args[0] == "list":
		method, url = http.MethodGet, base+"?limit=1000"
	case len(args) == 2 && args[0] == "replay":
		seq, err := strconv.ParseUint(args[1], 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "replay needs a sequence number, not %q\n", args[1])
			return exitUsage
		}
		method, url = http.MethodPost, base+"/"+strconv.FormatUint(seq, 10)+"/replay"
	case len(args) == 1 && args[0] == "purge":
		method, url = http.MethodDelete, base
	default:
		fmt.Fprintln(stderr, "usage: presence-bridge dlq list|replay SEQ|purge --config FILE")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailure
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Admin.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "dlq: is the bridge running at %s? %v\n", cfg.HTTP.Listen, err)
		return exitFailure
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	var pretty any
	if json.Unmarshal(body, &pretty) == nil {
		body, _ = json.MarshalIndent(pretty, "", "  ")
	}
	fmt.Fprintln(stdout, string(body))
	if resp.StatusCode >= 300 {
		return exitFailure
	}
	return exitOK
}
