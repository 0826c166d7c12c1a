package ingest

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// errorKey is where writeError leaves its answer in the gin context, for
// observe.
const errorKey = "presence-bridge.error"

// rejectionLogEvery is how often, at most, one kind of rejection (source,
// status, reason) is logged; the next line counts those left out.
const rejectionLogEvery = 10 * time.Second

// Reasons a source's request is rejected, as rejectionReason gives them.
const (
	ReasonSignature   = "signature"
	ReasonToken       = "token"
	ReasonInvalid     = "invalid"
	ReasonTooLarge    = "too_large"
	ReasonMediaType   = "unsupported_media_type"
	ReasonWrongSource = "wrong_source"
)

// observe reports a request to a source's endpoint once it is answered,
// and logs it when it was rejected: with the source, the status, the
// reason and the error code, never the body or a credential.
func (h *handler) observe(c *gin.Context, source string, bearer bool) {
	status := c.Writer.Status()
	var detail errorDetail
	if v, ok := c.Get(errorKey); ok {
		detail, _ = v.(errorDetail)
	}
	reason := rejectionReason(status, detail.Message, bearer)
	h.opts.Observe(source, status, reason)
	if reason == "" {
		return
	}
	args := []any{"source", source, "status", status, "reason", reason, "code", detail.Code, "path", c.FullPath(), "remote", c.ClientIP()}
	if reason != ReasonInvalid {
		// Authentication and size messages are the bridge's own words;
		// a validation message may quote what was sent, so only the
		// fields it names are logged.
		args = append(args, "detail", detail.Message)
	} else if len(detail.Fields) > 0 {
		fields := make([]string, 0, len(detail.Fields))
		for _, f := range detail.Fields {
			fields = append(fields, f.Field)
		}
		args = append(args, "fields", fields)
	}
	key := source + " " + strconv.Itoa(status) + " " + reason
	h.rejections.Log(c.Request.Context(), h.opts.Log, slog.LevelWarn, key, "webhook rejected", args...)
}

// rejectionReason names why a 4xx answer rejected a request, "" for any
// other answer. A 401 is about a bearer or shared token on /v1/events and
// when the adapter's message names one, about a signature otherwise.
func rejectionReason(status int, message string, bearer bool) string {
	switch {
	case status == http.StatusUnauthorized:
		m := strings.ToLower(message)
		if bearer || strings.Contains(m, "token") || strings.Contains(m, "clientstate") {
			return ReasonToken
		}
		return ReasonSignature
	case status == http.StatusForbidden:
		return ReasonWrongSource
	case status == http.StatusRequestEntityTooLarge:
		return ReasonTooLarge
	case status == http.StatusUnsupportedMediaType:
		return ReasonMediaType
	case status >= 400 && status < 500:
		return ReasonInvalid
	}
	return ""
}
