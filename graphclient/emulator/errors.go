package emulator

import (
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// maxBody bounds request bodies.
const maxBody = 4 << 20

// readBody reads a request body, un-gzipping it when the client compressed
// it (the Graph SDKs do).
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	var reader io.Reader = io.LimitReader(r.Body, maxBody+1)
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(reader)
		if err != nil {
			return nil, fmt.Errorf("body is not valid gzip: %w", err)
		}
		defer gz.Close()
		reader = io.LimitReader(gz, maxBody+1)
		r.Header.Del("Content-Encoding")
	}
	body, err := io.ReadAll(reader)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(body) > maxBody {
		return nil, errors.New("body too large")
	}
	return body, nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// writeGraphError answers in Graph's error shape, with a request-id.
func writeGraphError(w http.ResponseWriter, r *http.Request, status int, code, message string, now time.Time) {
	requestID := newID()
	inner := map[string]string{
		"date":              now.UTC().Format("2006-01-02T15:04:05"),
		"request-id":        requestID,
		"client-request-id": r.Header.Get("client-request-id"),
	}
	if status == http.StatusTooManyRequests {
		inner["code"] = "429"
		inner["status"] = "429"
		delete(inner, "client-request-id")
	}
	w.Header().Set("request-id", requestID)
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": message, "innerError": inner}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
