package emulator

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// maxBody bounds request bodies, after decompression.
const maxBody = 1 << 20

var errBodyTooLarge = errors.New("request body too large")

// readBody reads a request body, decompressing it when the client sent
// Content-Encoding: gzip (the official Graph SDKs compress their bodies).
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	var reader io.Reader = io.LimitReader(r.Body, maxBody+1)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		gz, err := gzip.NewReader(reader)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		defer gz.Close()
		reader = io.LimitReader(gz, maxBody+1)
	default:
		return nil, fmt.Errorf("content encoding %q is not supported", enc)
	}
	body, err := io.ReadAll(reader)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(body) > maxBody {
		return nil, errBodyTooLarge
	}
	return body, nil
}

// requireJSON checks that a request declares a JSON body, as Graph's
// actions require; otherwise it is 415.
func requireJSON(r *http.Request) *apiError {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &apiError{status: http.StatusUnsupportedMediaType, code: "UnsupportedMediaType",
			message: "The content type of the request must be application/json."}
	}
	return nil
}

// actionParams reads an OData action's JSON body: an object whose keys are
// the action's parameters (names as Graph spells them; @odata annotations
// are allowed). Each parameter found is decoded into the matching target;
// null leaves the target alone. An empty body counts as {}.
func actionParams(body []byte, action string, targets map[string]any) *apiError {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return badRequest("BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
	}
	for name, value := range raw {
		if strings.HasPrefix(name, "@odata.") {
			continue
		}
		target, known := targets[name]
		if !known {
			return badRequest("BadRequest", "The parameter '%s' in the request payload is not a valid parameter for the operation '%s'.", name, action)
		}
		if string(value) == "null" {
			continue
		}
		if err := json.Unmarshal(value, target); err != nil {
			return badRequest("BadRequest", "Cannot convert the literal '%s' to the expected type of parameter '%s'.", truncate(string(value), 64), name)
		}
	}
	return nil
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
