package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// clientFlags are the flags of the commands that talk to a running bridge.
type clientFlags struct {
	url, token, config, output string
}

// addClientFlags adds --url, --token, --config and -o (whose values are
// outputs, the first the default) to fs.
func addClientFlags(fs *flag.FlagSet, outputs ...string) *clientFlags {
	f := &clientFlags{}
	fs.StringVar(&f.url, "url", "", "the bridge's base URL, e.g. http://127.0.0.1:8080 (default $PRESENCE_BRIDGE_URL)")
	fs.StringVar(&f.token, "token", "", "the admin token (default $PRESENCE_BRIDGE_TOKEN)")
	fs.StringVar(&f.config, "config", "", "read the URL (admin.listen, else http.listen) and the token (admin.token) from this configuration instead")
	fs.StringVar(&f.output, "o", outputs[0], "output: "+strings.Join(outputs, " or "))
	return f
}

// adminClient calls a running bridge's admin API. It never shows the
// token: not in output, not in errors.
type adminClient struct {
	base, token string
	http        *http.Client
}

// client builds the admin client from the flags, the environment and,
// when given, a configuration file; problems are usage errors.
func (f *clientFlags) client(e *env, outputs ...string) (*adminClient, error) {
	ok := false
	for _, o := range outputs {
		ok = ok || f.output == o
	}
	if !ok {
		return nil, fmt.Errorf("-o must be %s, not %q", strings.Join(outputs, " or "), f.output)
	}
	base, token := f.url, f.token
	if base == "" {
		base = e.getenv("PRESENCE_BRIDGE_URL")
	}
	if token == "" {
		token = e.getenv("PRESENCE_BRIDGE_TOKEN")
	}
	if f.config != "" && (base == "" || token == "") {
		cfg, err := config.Load(f.config)
		if err != nil {
			return nil, err
		}
		if base == "" {
			base = "http://" + adminAddr(cfg)
		}
		if token == "" {
			token = cfg.Admin.Token
		}
	}
	if base == "" {
		return nil, errors.New("no bridge to ask: give --url or set PRESENCE_BRIDGE_URL")
	}
	if token == "" {
		return nil, errors.New("no admin token: give --token or set PRESENCE_BRIDGE_TOKEN")
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--url must be an http(s) URL such as http://127.0.0.1:8080, not %q", base)
	}
	return &adminClient{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// adminAddr is where a bridge running cfg serves its admin API:
// admin.listen when set, else http.listen. A wildcard host (0.0.0.0, ::
// or none) is reached on loopback.
func adminAddr(cfg *config.Config) string {
	addr := cfg.Admin.Listen
	if addr == "" {
		addr = cfg.HTTP.Listen
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}

// apiError is an error answer of the admin API.
type apiError struct {
	status        int
	code, message string
	body          []byte // the answer as it came
}

func (e *apiError) Error() string {
	if e.code == "" {
		return fmt.Sprintf("the bridge answered %d", e.status)
	}
	return fmt.Sprintf("the bridge answered %d %s: %s", e.status, e.code, e.message)
}

// do calls method path and returns the answer's body; an answer other
// than 2xx is an *apiError.
func (c *adminClient) do(ctx context.Context, method, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("can not reach the bridge at %s: %w", c.base, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var answer struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(body, &answer)
		return nil, &apiError{status: resp.StatusCode, code: answer.Error.Code, message: answer.Error.Message, body: body}
	}
	return body, nil
}

// getJSON calls GET path and decodes the answer into out.
func (c *adminClient) getJSON(ctx context.Context, path string, out any) error {
	body, err := c.do(ctx, http.MethodGet, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: the answer is not the JSON expected: %w", path, err)
	}
	return nil
}

// failed reports a runtime error on stderr and returns exitFailure.
func failed(e *env, err error) int {
	fmt.Fprintln(e.stderr, "error:", err)
	return exitFailure
}

func runStatus(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("presence-bridge status", flag.ContinueOnError)
	f := addClientFlags(fs, "table", "json")
	words, code, ok := parseFlags(fs, args, e)
	if !ok {
		return code
	}
	if !noWords(e, "status", words) {
		return exitUsage
	}
	c, err := f.client(e, "table", "json")
	if err != nil {
		fmt.Fprintln(e.stderr, "error:", err)
		return exitUsage
	}
	var tenants, sources struct {
		Tenants []json.RawMessage `json:"tenants"`
		Sources []json.RawMessage `json:"sources"`
	}
	if err := c.getJSON(ctx, "/v1/admin/tenants", &tenants); err != nil {
		return failed(e, err)
	}
	if err := c.getJSON(ctx, "/v1/admin/sources", &sources); err != nil {
		return failed(e, err)
	}
	if f.output == "json" {
		return printJSON(e, map[string]any{"tenants": tenants.Tenants, "sources": sources.Sources})
	}
	fmt.Fprintln(e.stdout, "TENANTS")
	if err := writeTable(e.stdout, tenants.Tenants); err != nil {
		return failed(e, err)
	}
	fmt.Fprintln(e.stdout, "\nSOURCES")
	if err := writeTable(e.stdout, sources.Sources); err != nil {
		return failed(e, err)
	}
	return exitOK
}

func runWhy(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("presence-bridge why", flag.ContinueOnError)
	f := addClientFlags(fs, "text", "json")
	tenant := fs.String("tenant", "", "the user's tenant (may be left out when the bridge has one)")
	words, code, ok := parseFlags(fs, args, e)
	if !ok {
		return code
	}
	if len(words) != 1 {
		fmt.Fprintln(e.stderr, "why needs one USER: a UPN, a directory key or an object id")
		return exitUsage
	}
	c, err := f.client(e, "text", "json")
	if err != nil {
		fmt.Fprintln(e.stderr, "error:", err)
		return exitUsage
	}
	if *tenant == "" {
		var list struct{ Tenants []struct{ ID string } }
		if err := c.getJSON(ctx, "/v1/admin/tenants", &list); err != nil {
			return failed(e, err)
		}
		if len(list.Tenants) != 1 {
			ids := make([]string, len(list.Tenants))
			for i, t := range list.Tenants {
				ids[i] = t.ID
			}
			fmt.Fprintf(e.stderr, "the bridge has %d tenants (%s): give --tenant\n", len(ids), strings.Join(ids, ", "))
			return exitUsage
		}
		*tenant = list.Tenants[0].ID
	}
	body, err := c.do(ctx, http.MethodGet, "/v1/admin/users/"+url.PathEscape(*tenant)+"/"+url.PathEscape(words[0]))
	if aerr := (*apiError)(nil); errors.As(err, &aerr) && aerr.code == "unknown_user" {
		// An unknown user's answer may say what became of the events
		// naming them.
		var answer struct{ History json.RawMessage }
		if json.Unmarshal(aerr.body, &answer) == nil && len(answer.History) > 0 {
			if doc, derr := decodeOrdered(answer.History); derr == nil && f.output != "json" {
				fmt.Fprintln(e.stdout, "history:")
				writeTree(e.stdout, doc, "  ")
			} else if derr == nil {
				printJSON(e, answer.History)
			}
		}
	}
	if err != nil {
		return failed(e, err)
	}
	if f.output == "json" {
		return printJSON(e, json.RawMessage(body))
	}
	doc, err := decodeOrdered(body)
	if err != nil {
		return failed(e, fmt.Errorf("the answer is not JSON: %w", err))
	}
	writeTree(e.stdout, doc, "")
	return exitOK
}

// printJSON writes v as indented JSON.
func printJSON(e *env, v any) int {
	raw, err := json.Marshal(v)
	if err != nil {
		return failed(e, err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return failed(e, err)
	}
	out.WriteByte('\n')
	_, _ = out.WriteTo(e.stdout)
	return exitOK
}
