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
	"github.com/presence-bridge/presence-bridge/bridge/ingest"
	"github.com/presence-bridge/presence-bridge/bridge/lookup"
)

// Options say what to serve where.
type Options struct {
	// Listen is the public address (http.listen); AdminListen, when set,
	// the operations listener's (admin.listen).
	Listen, AdminListen string
	// ReadTimeout bounds reading a request, its header included.
	ReadTimeout time.Duration
	Ingest      ingest.Options
	Lookup      lookup.HTTPOptions
	Admin       admin.Deps
	// Metrics serves /metrics.
	Metrics http.Handler
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

// Start listens and serves; it returns once both addresses listen. On
// error nothing is left serving.
func Start(o Options) (*Server, error) {
	router := ingest.NewRouter(o.Ingest)
	ops := router
	if o.AdminListen != "" {
		ops = gin.New()
		ops.Use(gin.Recovery())
	}
	lookup.Register(router, o.Lookup)
	ops.GET("/metrics", gin.WrapH(o.Metrics))
	admin.Register(ops, o.Admin)
	s := &Server{}
	if ops != router {
		l, err := serve("admin", o.AdminListen, ops, o)
		if err != nil {
			return nil, err
		}
		s.ops, l.name = l, "operations listener"
		o.Log.Info("operations listening (metrics, admin API, status page)", "addr", l.ln.Addr().String())
	}
	l, err := serve("http", o.Listen, router, o)
	if err != nil {
		if s.ops != nil {
			_ = s.ops.server.Close()
		}
		return nil, err
	}
	s.public, l.name = l, "http"
	o.Log.Info("presence bridge listening", "addr", l.ln.Addr().String())
	return s, nil
}

// serve listens on addr and serves h there until the server is shut down.
func serve(what, addr string, h http.Handler, o Options) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listen: %w", what, err)
	}
	server := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: o.ReadTimeout,
		ReadTimeout:       o.ReadTimeout,
		ErrorLog:          slog.NewLogLogger(o.Log.Handler(), slog.LevelWarn),
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
