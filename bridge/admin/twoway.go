package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/presence-bridge/presence-bridge/bridge/metrics"
)

// OutputView is what GET /v1/admin/outputs shows of one output.
type OutputView struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Healthy is false from a failed delivery to the next success.
	Healthy bool `json:"healthy"`
	// Published counts delivered changes by origin (teams, bridge).
	Published map[string]uint64 `json:"published"`
	Skipped   uint64            `json:"skipped"`
	Dropped   uint64            `json:"dropped"`
	Failures  uint64            `json:"failures"`
	// Queued people wait; the first in line has waited LagSeconds.
	Queued     int     `json:"queued"`
	LagSeconds float64 `json:"lagSeconds"`
	// LastError is the last failed delivery's error, without credentials.
	LastError   string     `json:"lastError,omitempty"`
	LastErrorAt *time.Time `json:"lastErrorAt,omitempty"`
	// Deliveries, Pending, OldestSeconds and Disabled are those of an
	// output that delivers on its own (webhook): tries by outcome
	// (delivered, retried, dead_lettered, dropped), people waiting in its
	// own queue and how long the first has waited, and whether the
	// endpoint disabled it (410 Gone).
	Deliveries    map[string]uint64 `json:"deliveries,omitempty"`
	Pending       int               `json:"pending,omitempty"`
	OldestSeconds float64           `json:"oldestSeconds,omitempty"`
	Disabled      bool              `json:"disabled,omitempty"`
}

// registerOutputs adds GET /v1/admin/outputs: the configured outputs with
// their health, as this bridge sees them (an empty list when the bridge
// runs none).
func registerOutputs(g *gin.RouterGroup, d Deps) {
	g.GET("/outputs", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"outputs": outputViews(d)})
	})
}

func outputViews(d Deps) []OutputView {
	views := []OutputView{}
	if d.Outputs == nil {
		return views
	}
	for _, s := range d.Outputs() {
		v := OutputView{Name: s.Name, Type: s.Type, Healthy: s.Healthy, Published: map[string]uint64{},
			Skipped: s.Skipped, Dropped: s.Dropped, Failures: s.Failures, Queued: s.Queued,
			LagSeconds: s.Lag.Seconds(), LastError: s.LastError}
		for k, n := range s.Published {
			v.Published[k] = n
		}
		if d := s.Delivery; d != nil {
			v.Healthy = v.Healthy && d.Healthy
			v.Deliveries, v.Pending, v.OldestSeconds, v.Disabled = map[string]uint64{}, d.Queued, d.Oldest.Seconds(), d.Disabled
			for k, n := range d.Deliveries {
				v.Deliveries[k] = n
			}
			if d.LastErrorAt.After(s.LastErrorAt) {
				s.LastError, s.LastErrorAt = d.LastError, d.LastErrorAt
				v.LastError = d.LastError
			}
		}
		if !s.LastErrorAt.IsZero() {
			at := s.LastErrorAt.UTC()
			v.LastErrorAt = &at
		}
		views = append(views, v)
	}
	return views
}

// watchRow is one tenant's Teams watcher on the status page.
type watchRow struct {
	Tenant, Cycle, Budget string
	Watched               int
	LastRead              time.Time
	Stretched             bool
}

// outputRow is one output on the status page.
type outputRow struct {
	OutputView
	PublishedText, Lag string
	// DeliveriesText is the tries by outcome and the pending, for an
	// output that delivers on its own.
	DeliveriesText string
}

// twoWayRows fills the Teams watch and Outputs sections; a nil snapshot
// function leaves its section out.
func twoWayRows(d Deps, data *pageData) {
	if d.Watch != nil {
		data.ShowWatch = true
		list := d.Watch()
		slices.SortFunc(list, func(a, b metrics.WatchStatus) int { return strings.Compare(a.Tenant, b.Tenant) })
		for _, w := range list {
			row := watchRow{Tenant: w.Tenant, Watched: w.Watched, LastRead: w.LastRead, Stretched: w.Stretched,
				Cycle: strconv.FormatFloat(w.CycleSeconds, 'f', 1, 64) + " s", Budget: fmt.Sprintf("%d of %d", w.BudgetUsed, w.Budget)}
			data.Watch = append(data.Watch, row)
		}
	}
	if d.Outputs != nil {
		data.ShowOutputs = true
		for _, v := range outputViews(d) {
			row := outputRow{OutputView: v, Lag: strconv.FormatFloat(v.LagSeconds, 'f', 1, 64) + " s"}
			var parts []string
			for _, origin := range slices.Sorted(func(yield func(string) bool) {
				for k := range v.Published {
					if !yield(k) {
						return
					}
				}
			}) {
				parts = append(parts, fmt.Sprintf("%s %d", origin, v.Published[origin]))
			}
			row.PublishedText = strings.Join(parts, ", ")
			if v.Deliveries != nil {
				row.DeliveriesText = fmt.Sprintf("delivered %d, retried %d, dead letters %d, dropped %d; %d pending, oldest %.0f s",
					v.Deliveries["delivered"], v.Deliveries["retried"], v.Deliveries["dead_lettered"], v.Deliveries["dropped"], v.Pending, v.OldestSeconds)
			}
			data.Outputs = append(data.Outputs, row)
		}
	}
}
