package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// serverState is the listener and HTTP server Start opened.
type serverState struct {
	mu       sync.Mutex
	listener net.Listener
	http     *http.Server
	cancel   context.CancelFunc // ends requests still waiting on latency
	done     chan struct{}
	closed   bool
}

// shutdownTimeout bounds how long Close waits for requests in flight.
const shutdownTimeout = 2 * time.Second

// Start listens on cfg.Listen and serves in the background until Close.
// ctx bounds only the listening; use port 0 to let the system pick a free
// port, then Addr to learn it.
func (e *Emulator) Start(ctx context.Context) error {
	if err := hostPort(e.cfg.Listen); err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	s := &e.server
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener != nil || s.closed {
		return errors.New("emulator: already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", e.cfg.Listen)
	if err != nil {
		return fmt.Errorf("emulator listen: %w", err)
	}
	base, cancel := context.WithCancel(context.Background())
	s.listener, s.cancel, s.done = ln, cancel, make(chan struct{})
	s.http = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("graph emulator stopped serving", "err", err)
		}
	}()
	return nil
}

// Addr returns the address the emulator listens on once started, such as
// 127.0.0.1:40123, or "" before Start.
func (e *Emulator) Addr() string {
	s := &e.server
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// GraphURL returns the base URL of the emulated Graph v1.0 endpoint, such
// as http://127.0.0.1:8081/v1.0.
func (e *Emulator) GraphURL() string { return "http://" + e.Addr() + "/v1.0" }

// LoginURL returns the base URL of the emulated identity platform; the
// token endpoint is LoginURL()/{tenant}/oauth2/v2.0/token.
func (e *Emulator) LoginURL() string { return "http://" + e.Addr() }

// Close stops serving: it stops accepting connections, ends requests
// waiting on injected latency and waits briefly for the others. It is
// safe to call more than once, and before Start.
func (e *Emulator) Close() error {
	s := &e.server
	s.mu.Lock()
	if s.closed || s.http == nil {
		s.closed = true
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srv, cancel, done := s.http, s.cancel, s.done
	s.mu.Unlock()

	cancel()
	ctx, stop := context.WithTimeout(context.Background(), shutdownTimeout)
	defer stop()
	err := srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, srv.Close())
	}
	<-done
	if err != nil {
		return fmt.Errorf("emulator close: %w", err)
	}
	return nil
}

// hostPort checks an address for Start.
func hostPort(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	return nil
}
