// Package server serves a bridge's HTTP: the public router (ingest, the
// lookup API and, without an admin.listen of their own, the operations
// routes) on http.listen, and the operations router (/metrics, the admin
// API and the status page) on admin.listen when it is set. Shutdown takes
// both down.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/presence-bridge/presence-bridge/bridge/admin"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/eventlog"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/ingest"
	"github.com/presence-bridge/presence-bridge/bridge/lookup"
	"github.com/presence-bridge/presence-bridge/bridge/metrics"
	"github.com/presence-bridge/presence-bridge/bridge/sources"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/bridge/writer"
)

// Deps are what the routes serve from the running bridge.
type Deps struct {
	Events  *eventlog.Queue
	Sources *sources.Live
	Views   *lookup.Views
	Metrics *metrics.Metrics
	// Ready answers /readyz.
	Ready func(ctx context.Context) error
	// Resolve, Stages and History are the admin API's (see admin.Deps).
	Resolve func(ctx context.Context, tenant, user string) (string, error)
	Stages  func() (*state.Store, *writer.Pool, state.Rules)
	History func(ctx context.Context, tenant, userID string) ([]history.Entry, error)
	// Watch and Outputs are the Teams watchers' and the outputs' state
	// for the status page and GET /v1/admin/outputs.
	Watch   func() []metrics.WatchStatus
	Outputs func() []metrics.OutputStatus
	Now     func() time.Time
	Log     *slog.Logger
}

// Server is the running public listener and, with AdminListen, the
// operations listener.
type Server struct {
	public, ops *listener // ops is nil without AdminListen
}

// listener is one address served until shut down.
type listener struct {
	name   string // in Shutdown's errors
	ln     net.Listener
	server *http.Server
	done   chan error // receives what Serve returned
}

// Start serves cfg's http.listen and admin.listen; it returns once both
// listen. On error nothing is left serving.
func Start(cfg *config.Config, d Deps) (*Server, error) {
	router := ingest.NewRouter(ingest.Options{
		Publisher:       d.Events,
		Live:            d.Sources.Set(),
		BodyLimit:       cfg.HTTP.BodyLimit,
		MaxFutureSkew:   cfg.HTTP.MaxFutureSkew,
		Ready:           d.Ready,
		Down:            d.Events.Down,
		DuplicateWindow: cfg.NATS.DuplicateWindow,
		Log:             d.Log.With("component", "http"),
		Count:           d.Metrics.HTTPRequest,
		Observe:         d.Metrics.WebhookRequest,
		Accepted:        d.Metrics.EventsAccepted,
	})
	ops := router
	if cfg.Admin.Listen != "" {
		ops = gin.New()
		ops.Use(gin.Recovery())
	}
	lookup.Register(router, lookup.HTTPOptions{Token: cfg.Lookup.Token, Views: d.Views, Now: d.Now, Log: d.Log.With("component", "lookup")})
	ops.GET("/metrics", gin.WrapH(d.Metrics.Handler()))
	tenants := make([]string, len(cfg.Graph.Tenants))
	for i, t := range cfg.Graph.Tenants {
		tenants[i] = t.ID
	}
	admin.Register(ops, admin.Deps{
		Token:       cfg.Admin.Token,
		DeadLetters: d.Events,
		Resolve:     d.Resolve,
		Stages:      d.Stages,
		Tenants:     tenants,
		History:     d.History,
		Sources:     d.Sources.Describe,
		Metrics:     d.Metrics.Registry(),
		Watch:       d.Watch,
		Outputs:     d.Outputs,
		Now:         d.Now,
	})
	s := &Server{}
	if ops != router {
		l, err := serve("admin", cfg.Admin.Listen, ops, cfg.HTTP.ReadTimeout, d.Log)
		if err != nil {
			return nil, err
		}
		s.ops, l.name = l, "operations listener"
		d.Log.Info("operations listening (metrics, admin API, status page)", "addr", l.ln.Addr().String())
	}
	l, err := serve("http", cfg.HTTP.Listen, router, cfg.HTTP.ReadTimeout, d.Log)
	if err != nil {
		if s.ops != nil {
			_ = s.ops.server.Close()
		}
		return nil, err
	}
	s.public, l.name = l, "http"
	d.Log.Info("presence bridge listening", "addr", l.ln.Addr().String())
	return s, nil
}

// serve listens on addr and serves h there until the server is shut down.
func serve(what, addr string, h http.Handler, readTimeout time.Duration, log *slog.Logger) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listen: %w", what, err)
	}
	server := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readTimeout,
		ReadTimeout:       readTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- server.Serve(ln) }()
	return &listener{ln: ln, server: server, done: done}, nil
}

// Addr returns the public address; "" on a nil Server.
func (s *Server) Addr() string {
	if s == nil {
		return ""
	}
	return s.public.ln.Addr().String()
}

// AdminAddr returns the operations listener's address, or the public one
// without AdminListen.
func (s *Server) AdminAddr() string {
	if s != nil && s.ops != nil {
		return s.ops.ln.Addr().String()
	}
	return s.Addr()
}

// Wait returns nil when ctx ends, or what a listener's Serve returned
// when one stops serving first.
func (s *Server) Wait(ctx context.Context) error {
	var opsDone chan error // nil without AdminListen: never ready
	if s.ops != nil {
		opsDone = s.ops.done
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.public.done:
		s.public.done <- err
		return err
	case err := <-opsDone:
		opsDone <- err
		return err
	}
}

// Shutdown stops both listeners, waiting (bounded by ctx) for the
// requests in hand; a listener that does not finish in time is closed.
// A nil Server has nothing to stop.
func (s *Server) Shutdown(ctx context.Context) error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, l := range []*listener{s.public, s.ops} {
		if l == nil {
			continue
		}
		if err := l.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", l.name, err))
			_ = l.server.Close()
		}
	}
	return errors.Join(errs...)
}
