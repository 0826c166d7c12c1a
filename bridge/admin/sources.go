package admin

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// Source is what the admin API shows of a configured source: never its
// token or secret, only which of them it has.
type Source struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Tenant string `json:"tenant"`
	Path   string `json:"path"`
	// Auth lists how the source authenticates: "token", "secret".
	Auth []string `json:"auth"`
}

// registerSources adds GET /v1/admin/sources: the sources as now
// configured (a reload changes them).
func registerSources(g *gin.RouterGroup, d Deps) {
	g.GET("/sources", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"sources": d.sourceList()})
	})
}

// sourceList returns the sources as now configured, never nil.
func (d Deps) sourceList() []Source {
	var list []Source
	if d.Sources != nil {
		list = d.Sources()
	}
	if list == nil {
		list = []Source{}
	}
	return list
}
