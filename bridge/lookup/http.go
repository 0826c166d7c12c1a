package lookup

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/presence-bridge/presence-bridge/bridge/internal/guessguard"
	"github.com/presence-bridge/presence-bridge/outputs"
)

// HTTPOptions configure the lookup API.
type HTTPOptions struct {
	// Token is the bearer token every request must carry (lookup.token);
	// empty turns the API off.
	Token string
	// Views answers the lookups.
	Views *Views
	// Now tells the time for the guard against token guessing; nil means
	// time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// BusyRetryAfter is what a 503 answer advises when the long-polls are at
// their cap or the bridge is stopping.
const BusyRetryAfter = "5"

// Register adds the lookup API to r:
//
//	GET /v1/presence/{user}[?tenant=T][&wait=D]   (with If-None-Match: 304 or, waiting, 200 on change)
//	GET /v1/presence[?tenant=T][&limit=N][&cursor=C]
//
// Without a token both answer 404, saying the API is not enabled. A client
// address that presents a wrong token too often is refused with 429 for a
// while (bridge/internal/guessguard).
func Register(r gin.IRouter, o HTTPOptions) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	a := api{HTTPOptions: o, token: []byte(o.Token), guard: guessguard.New(o.Now)}
	g := r.Group("/v1/presence", a.authorize)
	g.GET("", a.list)
	g.GET("/:user", a.get)
}

type api struct {
	HTTPOptions
	token []byte // Token, converted once
	guard *guessguard.Guard
}

// errorBody is every error answer: {"error":{"code","message"}}, as the
// other endpoints answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func fail(c *gin.Context, status int, code, message string) {
	c.AbortWithStatusJSON(status, errorBody{errorDetail{code, message}})
}

func (a api) authorize(c *gin.Context) {
	if a.Token == "" {
		fail(c, http.StatusNotFound, "not_enabled", "the lookup API is not enabled (set lookup.token)")
		return
	}
	if wait := a.guard.Wait(c.RemoteIP()); wait > 0 {
		c.Header("Retry-After", guessguard.RetryAfter(wait))
		fail(c, http.StatusTooManyRequests, "too_many_attempts", "too many wrong lookup tokens from this address; try again later")
		return
	}
	scheme, got, _ := strings.Cut(c.GetHeader("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(got), a.token) != 1 {
		a.guard.Failed(c.RemoteIP())
		c.Header("WWW-Authenticate", `Bearer realm="presence-bridge lookup"`)
		fail(c, http.StatusUnauthorized, "unauthorized", "missing or wrong lookup token")
		return
	}
	c.Writer.Header()["Cache-Control"] = noCache
	c.Next()
}

// Header values every answer shares, set without allocating. No one
// changes a value in place: Set replaces the slice, Add appends to a
// full one.
var (
	noCache  = []string{"no-cache"}
	jsonType = []string{"application/json; charset=utf-8"}
)

// query returns the query parameter key, "" when absent. Without a query
// it does not parse one (gin's c.Query makes a map per request).
func query(c *gin.Context, key string) string {
	if c.Request.URL.RawQuery == "" {
		return ""
	}
	return c.Query(key)
}

// tenantParam reads ?tenant=, aborting with 400 when it is malformed.
func tenantParam(c *gin.Context) (string, bool) {
	t := query(c, "tenant")
	if t == "" {
		return "", true
	}
	t, err := ParseUser(t)
	if err != nil {
		fail(c, http.StatusBadRequest, "bad_tenant", "tenant: "+err.Error())
		return "", false
	}
	return t, true
}

func (a api) get(c *gin.Context) {
	user, err := ParseUser(c.Param("user"))
	if err != nil {
		fail(c, http.StatusBadRequest, "bad_user", "user: "+err.Error())
		return
	}
	tenant, ok := tenantParam(c)
	if !ok {
		return
	}
	wait, err := ParseWait(query(c, "wait"))
	if err != nil {
		fail(c, http.StatusBadRequest, "bad_wait", "wait: "+err.Error())
		return
	}
	match, err := ParseIfNoneMatch(strings.Join(c.Request.Header.Values("If-None-Match"), ", "))
	if err != nil {
		fail(c, http.StatusBadRequest, "bad_if_none_match", "If-None-Match: "+err.Error())
		return
	}
	ctx := c.Request.Context()
	view, etag, err := a.Views.Get(ctx, tenant, user)
	if err == nil && wait > 0 && match.Matches(etag) {
		wctx, cancel := context.WithTimeout(ctx, wait)
		for err == nil && match.Matches(etag) && wctx.Err() == nil {
			view, etag, err = a.Views.Wait(wctx, tenant, user, etag)
		}
		cancel()
	}
	if err != nil {
		a.failLookup(c, user, err)
		return
	}
	c.Header("ETag", etag)
	if match.Matches(etag) {
		c.Status(http.StatusNotModified)
		return
	}
	buf := buffers.Get().(*[]byte)
	*buf = appendView((*buf)[:0], view)
	// As c.Data would, without its allocations.
	c.Writer.Header()["Content-Type"] = jsonType
	c.Writer.WriteHeader(http.StatusOK)
	_, _ = c.Writer.Write(*buf)
	buffers.Put(buf)
}

// failLookup answers a failed Get or Wait.
func (a api) failLookup(c *gin.Context, user string, err error) {
	switch {
	case errors.Is(err, ErrNotWatched):
		fail(c, http.StatusNotFound, "not_watched", fmt.Sprintf("nobody watched is known as %q", user))
	case errors.Is(err, ErrAmbiguous):
		fail(c, http.StatusBadRequest, "ambiguous_user", fmt.Sprintf("%q is watched in more than one tenant; add ?tenant=", user))
	case errors.Is(err, ErrTooManyWaiters):
		c.Header("Retry-After", BusyRetryAfter)
		fail(c, http.StatusServiceUnavailable, "too_many_waiting", "too many requests are waiting for a change; try again later")
	case errors.Is(err, ErrClosed):
		c.Header("Retry-After", BusyRetryAfter)
		fail(c, http.StatusServiceUnavailable, "stopping", "the bridge is stopping; try again later")
	default:
		a.Log.Warn("lookup failed", "error", err)
		c.Header("Retry-After", BusyRetryAfter)
		fail(c, http.StatusServiceUnavailable, "unavailable", "the lookup could not be answered; try again later")
	}
}

// listBody is GET /v1/presence's answer.
type listBody struct {
	Presence []outputs.View `json:"presence"`
	// Next is the cursor of the next page, empty after the last.
	Next string `json:"next,omitempty"`
}

func (a api) list(c *gin.Context) {
	tenant, ok := tenantParam(c)
	if !ok {
		return
	}
	limit, err := ParseLimit(c.Query("limit"))
	if err != nil {
		fail(c, http.StatusBadRequest, "bad_limit", "limit: "+err.Error())
		return
	}
	views, next, err := a.Views.List(tenant, c.Query("cursor"), limit)
	if err != nil {
		fail(c, http.StatusBadRequest, "bad_cursor", "cursor: "+err.Error())
		return
	}
	if views == nil {
		views = []outputs.View{}
	}
	c.JSON(http.StatusOK, listBody{Presence: views, Next: next})
}
