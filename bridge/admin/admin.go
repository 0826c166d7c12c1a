// Package admin is the bridge's token-protected operations surface: the
// admin API (dead letters, a user's state and history, each tenant's
// writer as this bridge sees it) and the status page.
package admin

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-bridge/presence-bridge/bridge/eventlog"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/metrics"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/bridge/writer"
)

// DeadLetters is the dead-letter stream as the admin API uses it.
type DeadLetters interface {
	ListDeadLetters(ctx context.Context, from uint64, limit int) ([]eventlog.DeadLetter, error)
	ReplayDeadLetter(ctx context.Context, seq uint64) error
	PurgeDeadLetters(ctx context.Context) (uint64, error)
}

// Deps are the parts of a running bridge the admin API reads.
type Deps struct {
	// Token is the bearer token every request must carry; empty turns
	// the API off.
	Token       string
	DeadLetters DeadLetters
	// Resolve resolves a user given as object id, UPN or directory key.
	Resolve func(ctx context.Context, tenant, user string) (string, error)
	// Stages returns the state store, the writers and the rules they
	// derive by, or nils while they do not run.
	Stages func() (*state.Store, *writer.Pool, state.Rules)
	// Tenants are the configured tenant ids.
	Tenants []string
	// History returns a user's history, nil when none is kept.
	History func(ctx context.Context, tenant, userID string) ([]history.Entry, error)
	// Sources returns the configured sources, for the status page and
	// GET /v1/admin/sources (sources.go).
	Sources func() []Source
	// Metrics is the bridge's registry; the status page shows the
	// tenants' and sources' figures it holds.
	Metrics prometheus.Gatherer
	// Watch and Outputs are the Teams watchers' and the outputs'
	// snapshots (the same functions metrics.Options take); nil leaves
	// their sections out of the status page, and GET /v1/admin/outputs
	// answers an empty list.
	Watch   func() []metrics.WatchStatus
	Outputs func() []metrics.OutputStatus
	// Now tells the time; nil means time.Now.
	Now func() time.Time
}

// Register adds the token-protected admin endpoints:
//
//	GET    /v1/admin/deadletters?from=SEQ&limit=N
//	POST   /v1/admin/deadletters/{seq}/replay
//	DELETE /v1/admin/deadletters
//	GET    /v1/admin/users/{tenant}/{user}   (a user's state, open calls, pending call and history)
//	GET    /v1/admin/tenants                 (each tenant's writer, as this bridge sees it)
//	GET    /v1/admin/sources                 (the configured sources, without secrets)
//	GET    /v1/admin/outputs                 (the configured outputs and their health)
//
// Without admin.token they answer 404, so nothing is open by accident.
//
// It also adds the status page at / (see registerPage).
//
// A client address that presents a wrong token too often, here or at the
// status page's login, is refused with 429 for a while (guard.go).
func Register(r *gin.Engine, d Deps) {
	guard := newGuessGuard(d.Now)
	registerPage(r, d, guard)
	token := d.Token
	g := r.Group("/v1/admin", func(c *gin.Context) {
		if token == "" {
			adminError(c, http.StatusNotFound, "not_found", "admin endpoints are off (set admin.token)")
			return
		}
		if wait := guard.wait(c.RemoteIP()); wait > 0 {
			c.Header("Retry-After", retryAfter(wait))
			adminError(c, http.StatusTooManyRequests, "too_many_attempts", "too many wrong admin tokens from this address; try again later")
			return
		}
		scheme, got, _ := strings.Cut(c.GetHeader("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			guard.failed(c.RemoteIP())
			adminError(c, http.StatusUnauthorized, "unauthorized", "missing or wrong admin token")
			return
		}
		c.Next()
	})
	g.GET("/deadletters", func(c *gin.Context) {
		from, err1 := strconv.ParseUint(c.DefaultQuery("from", "0"), 10, 64)
		limit, err2 := strconv.Atoi(c.DefaultQuery("limit", "100"))
		if err1 != nil || err2 != nil || limit < 1 || limit > 1000 {
			adminError(c, http.StatusBadRequest, "invalid_request", "from must be a sequence number and limit between 1 and 1000")
			return
		}
		list, err := d.DeadLetters.ListDeadLetters(c.Request.Context(), from, limit)
		if err != nil {
			adminError(c, http.StatusServiceUnavailable, "queue_unavailable", err.Error())
			return
		}
		c.JSON(http.StatusOK, gin.H{"deadLetters": list})
	})
	g.POST("/deadletters/:seq/replay", func(c *gin.Context) {
		seq, err := strconv.ParseUint(c.Param("seq"), 10, 64)
		if err != nil || seq == 0 {
			adminError(c, http.StatusBadRequest, "invalid_request", "seq must be a positive sequence number")
			return
		}
		if err := d.DeadLetters.ReplayDeadLetter(c.Request.Context(), seq); err != nil {
			adminError(c, http.StatusNotFound, "not_replayed", err.Error())
			return
		}
		c.JSON(http.StatusOK, gin.H{"replayed": seq})
	})
	g.GET("/users/:tenant/:user", func(c *gin.Context) {
		v, err := lookupUser(c.Request.Context(), d, c.Param("tenant"), c.Param("user"))
		if err != nil && len(err.history) > 0 {
			// An unknown user, with what became of the events naming them.
			c.AbortWithStatusJSON(err.status, gin.H{"error": gin.H{"code": err.code, "message": err.message}, "history": err.history})
			return
		}
		if err != nil {
			adminError(c, err.status, err.code, err.message)
			return
		}
		c.JSON(http.StatusOK, v)
	})
	registerSources(g, d)
	registerOutputs(g, d)
	g.GET("/tenants", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"tenants": tenantViews(d)})
	})
	g.DELETE("/deadletters", func(c *gin.Context) {
		n, err := d.DeadLetters.PurgeDeadLetters(c.Request.Context())
		if err != nil {
			adminError(c, http.StatusServiceUnavailable, "queue_unavailable", err.Error())
			return
		}
		c.JSON(http.StatusOK, gin.H{"purged": n})
	})
}

func adminError(c *gin.Context, status int, code, message string) {
	c.AbortWithStatusJSON(status, gin.H{"error": gin.H{"code": code, "message": message}})
}

// tenantView is what the admin API shows of one tenant's writer.
type tenantView struct {
	ID string `json:"id"`
	// Writing tells whether this bridge holds the tenant's writer lease.
	Writing bool `json:"writing"`
	// Refused is why Graph refuses the whole tenant (a missing permission
	// or consent), with the time of the next probing call; empty when it
	// does not, or when another bridge writes for the tenant.
	Refused      string     `json:"refused,omitempty"`
	RefusedUntil *time.Time `json:"refusedUntil,omitempty"`
	// SessionCapacity is how many app sessions the budget keeps alive.
	SessionCapacity int `json:"sessionCapacity"`
}

func tenantViews(d Deps) []tenantView {
	_, writers, _ := d.Stages()
	views := make([]tenantView, 0, len(d.Tenants))
	for _, id := range d.Tenants {
		v := tenantView{ID: id}
		if writers != nil {
			v.Writing = writers.Writing(id)
			v.SessionCapacity = writers.SessionCapacity(id)
			if reason, until := writers.TenantPaused(id); reason != "" {
				v.Refused, v.RefusedUntil = reason, &until
			}
		}
		views = append(views, v)
	}
	return views
}

// retryAfter is a Retry-After value: whole seconds, at least one.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(max(1, (d+time.Second-1)/time.Second)))
}
