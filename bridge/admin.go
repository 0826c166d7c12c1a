package bridge

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// registerAdmin adds the token-protected dead-letter endpoints:
//
//	GET    /v1/admin/deadletters?from=SEQ&limit=N
//	POST   /v1/admin/deadletters/{seq}/replay
//	DELETE /v1/admin/deadletters
//	GET    /v1/admin/users/{tenant}/{user}   (the engine's state of a user)
//	GET    /v1/admin/tenants                 (each tenant's writer, as this bridge sees it)
//
// Without admin.token they answer 404, so nothing is open by accident.
func (b *Bridge) registerAdmin(r *gin.Engine) {
	token := b.cfg.Admin.Token
	g := r.Group("/v1/admin", func(c *gin.Context) {
		if token == "" {
			adminError(c, http.StatusNotFound, "not_found", "admin endpoints are off (set admin.token)")
			return
		}
		scheme, got, _ := strings.Cut(c.GetHeader("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
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
		list, err := b.queue.ListDeadLetters(c, from, limit)
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
		if err := b.queue.ReplayDeadLetter(c, seq); err != nil {
			adminError(c, http.StatusNotFound, "not_replayed", err.Error())
			return
		}
		c.JSON(http.StatusOK, gin.H{"replayed": seq})
	})
	g.GET("/users/:tenant/:user", func(c *gin.Context) {
		userID, err := b.resolveForAdmin(c, c.Param("tenant"), c.Param("user"))
		if err != nil {
			adminError(c, http.StatusNotFound, "unknown_user", err.Error())
			return
		}
		eng := b.runningEngine()
		if eng == nil {
			adminError(c, http.StatusServiceUnavailable, "state_unavailable", "the engine is not running (NATS not connected yet)")
			return
		}
		st, err := eng.State(c, c.Param("tenant"), userID)
		if err != nil {
			adminError(c, http.StatusServiceUnavailable, "state_unavailable", err.Error())
			return
		}
		desired, _ := st.Desired(b.rules, time.Now())
		c.JSON(http.StatusOK, gin.H{"state": st, "desired": desired})
	})
	g.GET("/tenants", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"tenants": b.tenantViews()})
	})
	g.DELETE("/deadletters", func(c *gin.Context) {
		n, err := b.queue.PurgeDeadLetters(c)
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

// resolveForAdmin resolves a user given as object id, UPN or directory key.
func (b *Bridge) resolveForAdmin(ctx context.Context, tenant, user string) (string, error) {
	if _, err := b.graph.client(tenant); err != nil {
		return "", err
	}
	return b.directory.Resolve(ctx, tenant, user)
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

func (b *Bridge) tenantViews() []tenantView {
	eng := b.runningEngine()
	views := make([]tenantView, 0, len(b.cfg.Graph.Tenants))
	for _, t := range b.cfg.Graph.Tenants {
		v := tenantView{ID: t.ID}
		if eng != nil {
			v.Writing = eng.Writing(t.ID)
			v.SessionCapacity = eng.SessionCapacity(t.ID)
			if reason, until := eng.TenantPaused(t.ID); reason != "" {
				v.Refused, v.RefusedUntil = reason, &until
			}
		}
		views = append(views, v)
	}
	return views
}
