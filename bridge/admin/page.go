package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/presence-bridge/presence-bridge/bridge/eventlog"
)

//go:embed page.html
var pageFiles embed.FS

var pageTemplate = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"whenp": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
}).ParseFS(pageFiles, "page.html"))

// sessionCookie holds a login to the status page: a value derived from
// the admin token and a key of this process, never the token itself.
const sessionCookie = "presence_bridge_session"

// pageAuth signs the status page's session cookie and its forms' CSRF
// field with a key of its own, drawn at start and mixed with the admin
// token, so that a login ends with a restart or a new token.
type pageAuth struct {
	token string
	key   []byte
}

func newPageAuth(token string) *pageAuth {
	random := make([]byte, 32)
	_, _ = rand.Read(random) // crypto/rand never fails on supported systems
	m := hmac.New(sha256.New, random)
	m.Write([]byte(token))
	return &pageAuth{token: token, key: m.Sum(nil)}
}

func (a *pageAuth) sign(purpose string) string {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(purpose))
	return hex.EncodeToString(m.Sum(nil))
}

func (a *pageAuth) session() string { return a.sign("session") }
func (a *pageAuth) csrf() string    { return a.sign("csrf") }

// loggedIn reports whether the request carries the session cookie.
func (a *pageAuth) loggedIn(c *gin.Context) bool {
	got, err := c.Cookie(sessionCookie)
	return err == nil && hmac.Equal([]byte(got), []byte(a.session()))
}

// posted reports whether a form post is logged in and carries the CSRF
// field.
func (a *pageAuth) posted(c *gin.Context) bool {
	return a.loggedIn(c) && hmac.Equal([]byte(c.PostForm("csrf")), []byte(a.csrf()))
}

// registerPage adds the status page and its forms:
//
//	GET  /                          the page (a login form until logged in)
//	POST /login                     form field token: the admin token
//	POST /logout
//	POST /deadletters/{seq}/replay  form field csrf
func registerPage(r *gin.Engine, d Deps, guard *guessGuard) {
	if d.Token == "" {
		r.GET("/", func(c *gin.Context) {
			c.String(http.StatusNotFound, "The status page is off: set admin.token.\n")
		})
		return
	}
	a := newPageAuth(d.Token)
	page := r.Group("/", func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
	})
	page.GET("/", func(c *gin.Context) {
		if !a.loggedIn(c) {
			render(c, http.StatusOK, pageData{Login: true})
			return
		}
		render(c, http.StatusOK, statusData(c, d, a))
	})
	page.POST("/login", func(c *gin.Context) {
		if wait := guard.wait(c.RemoteIP()); wait > 0 {
			c.Header("Retry-After", retryAfter(wait))
			render(c, http.StatusTooManyRequests, pageData{Login: true, Error: "Too many wrong tokens from this address. Try again later."})
			return
		}
		if subtle.ConstantTimeCompare([]byte(c.PostForm("token")), []byte(d.Token)) != 1 {
			guard.failed(c.RemoteIP())
			render(c, http.StatusUnauthorized, pageData{Login: true, Error: "That is not the admin token."})
			return
		}
		http.SetCookie(c.Writer, &http.Cookie{
			Name: sessionCookie, Value: a.session(), Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: c.Request.TLS != nil, MaxAge: 12 * 3600,
		})
		c.Redirect(http.StatusSeeOther, "/")
	})
	page.POST("/logout", func(c *gin.Context) {
		if !a.posted(c) {
			render(c, http.StatusForbidden, pageData{Login: true, Error: "Log in again."})
			return
		}
		http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		c.Redirect(http.StatusSeeOther, "/")
	})
	page.POST("/deadletters/:seq/replay", func(c *gin.Context) {
		if !a.posted(c) {
			render(c, http.StatusForbidden, pageData{Login: true, Error: "Log in again to replay dead letters."})
			return
		}
		seq, err := strconv.ParseUint(c.Param("seq"), 10, 64)
		q := url.Values{}
		switch {
		case err != nil || seq == 0:
			q.Set("notice", "Not replayed: no such dead letter.")
		case d.DeadLetters.ReplayDeadLetter(c.Request.Context(), seq) != nil:
			q.Set("notice", "Dead letter "+strconv.FormatUint(seq, 10)+" was not replayed; see the bridge's log.")
		default:
			q.Set("notice", "Dead letter "+strconv.FormatUint(seq, 10)+" replayed.")
		}
		c.Redirect(http.StatusSeeOther, "/?"+q.Encode())
	})
}

func render(c *gin.Context, status int, data pageData) {
	c.Status(status)
	c.Header("Content-Type", "text/html; charset=utf-8")
	if err := pageTemplate.Execute(c.Writer, data); err != nil {
		_ = c.Error(err)
	}
}

// pageData is everything the page template shows.
type pageData struct {
	Login   bool
	Error   string
	Notice  string
	CSRF    string
	Now     time.Time
	Tenants []tenantRow
	Sources []sourceRow
	// The Teams watch per tenant and the outputs, each shown when its
	// snapshot function is set.
	ShowWatch, ShowOutputs bool
	Watch                  []watchRow
	Outputs                []outputRow
	// DeadLetters are up to deadLettersShown records from DeadLettersFrom;
	// NextDeadLetters is where the next page starts, 0 when none.
	DeadLetters     []eventlog.DeadLetter
	DeadLettersFrom uint64
	NextDeadLetters uint64
	DeadLetterCount string
	DeadLetterError string
	// The user lookup.
	LookupTenant, LookupUser string
	User                     *UserView
	UserError                string
}

type tenantRow struct {
	ID, Lease, Breaker, Budget, Backlog, Sessions, Manual, Refused string
	RefusedUntil                                                   *time.Time
	SessionCapacity                                                int
}

type sourceRow struct {
	Source
	LastEvent  time.Time
	Rejections []rejection
	// RunsOn says where a connect-out source runs, "" for a webhook
	// source; Entities how many of its entities it watches here, with
	// Lost set when some are not ("" when it reports none).
	RunsOn   string
	Entities string
	Lost     bool
}

type rejection struct {
	Reason string
	Count  uint64
}

// deadLettersShown is how many dead letters one page lists.
const deadLettersShown = 20

func statusData(c *gin.Context, d Deps, a *pageAuth) pageData {
	now := time.Now()
	if d.Now != nil {
		now = d.Now()
	}
	m := gather(d.Metrics)
	data := pageData{CSRF: a.csrf(), Now: now, Notice: c.Query("notice"), DeadLetterCount: m.number(metricDeadLetters, "")}
	for _, v := range tenantViews(d) {
		row := tenantRow{ID: v.ID, Refused: v.Refused, RefusedUntil: v.RefusedUntil, SessionCapacity: v.SessionCapacity,
			Breaker: m.breaker(v.ID), Budget: m.number(metricBudget, v.ID), Backlog: m.number(metricBacklog, v.ID),
			Sessions: m.number(metricSessions, v.ID), Manual: m.number(metricManual, v.ID)}
		row.Lease = "another bridge (or none)"
		if v.Writing {
			row.Lease = "this bridge"
		}
		data.Tenants = append(data.Tenants, row)
	}
	for _, s := range d.sourceList() {
		row := sourceRow{Source: s, LastEvent: m.lastEvent(s.Name), RunsOn: m.runsOn(s.Name)}
		if live, total, ok := m.entities(s.Name); ok {
			row.Entities = strconv.Itoa(live) + " of " + strconv.Itoa(total) + " subscribed"
			row.Lost = live < total
		}
		for reason, n := range m.rejections(s.Name) {
			row.Rejections = append(row.Rejections, rejection{reason, n})
		}
		slices.SortFunc(row.Rejections, func(x, y rejection) int { return strings.Compare(x.Reason, y.Reason) })
		data.Sources = append(data.Sources, row)
	}
	twoWayRows(d, &data)
	data.DeadLettersFrom, _ = strconv.ParseUint(c.Query("from"), 10, 64)
	if d.DeadLetters != nil {
		list, err := d.DeadLetters.ListDeadLetters(c.Request.Context(), data.DeadLettersFrom, deadLettersShown+1)
		if err != nil {
			data.DeadLetterError = err.Error()
		}
		if len(list) > deadLettersShown {
			data.NextDeadLetters = list[deadLettersShown].Seq
			list = list[:deadLettersShown]
		}
		data.DeadLetters = list
	}
	data.LookupTenant, data.LookupUser = c.Query("tenant"), strings.TrimSpace(c.Query("user"))
	if data.LookupTenant == "" && len(d.Tenants) > 0 {
		data.LookupTenant = d.Tenants[0]
	}
	if data.LookupUser != "" {
		if len(data.LookupUser) > 512 {
			data.UserError = "That user name is too long."
		} else if v, err := lookupUser(c.Request.Context(), d, data.LookupTenant, data.LookupUser); err != nil {
			data.UserError = err.message
		} else {
			data.User = v
		}
	}
	return data
}
