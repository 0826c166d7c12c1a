package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// The bare handler's stream is the bridge's events stream as the example
// configuration sets it up: the same name, subjects, storage, retention,
// duplicate window and limits.
const (
	bareStream          = "PRESENCE_EVENTS"
	bareSubjectPrefix   = "presence.events"
	bareDuplicateWindow = time.Hour
	barePublishTimeout  = 5 * time.Second
)

// bare is the floor the bridge's ingest is compared with: one Gin route
// that checks the bearer token, binds one event, validates it as the
// bridge does, publishes it to an embedded JetStream with the bridge's
// message id and answers 202 after the PubAck. Nothing else.
type bare struct {
	token  string
	server *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
}

// newBare starts an embedded NATS server with JetStream storing in dir,
// reachable in-process only, and creates the events stream.
func newBare(ctx context.Context, dir, token string) (*bare, error) {
	srv, err := server.NewServer(&server.Options{
		ServerName: "presence-load-bare",
		JetStream:  true,
		StoreDir:   dir,
		DontListen: true,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	srv.Start()
	b := &bare{token: token, server: srv}
	if !srv.ReadyForConnections(10 * time.Second) {
		b.Close()
		return nil, errors.New("embedded nats: not ready within 10s")
	}
	if b.nc, err = nats.Connect("", nats.InProcessServer(srv)); err != nil {
		b.Close()
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	if b.js, err = jetstream.New(b.nc); err != nil {
		b.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	_, err = b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       bareStream,
		Subjects:   []string{bareSubjectPrefix + ".>"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.WorkQueuePolicy,
		Duplicates: bareDuplicateWindow,
		Replicas:   1,
		MaxBytes:   256 << 20,
		MaxMsgs:    1_000_000,
		Discard:    jetstream.DiscardNew,
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("create stream %s: %w", bareStream, err)
	}
	return b, nil
}

// Close disconnects and stops the embedded server.
func (b *bare) Close() {
	if b.nc != nil {
		b.nc.Close()
	}
	b.server.Shutdown()
	b.server.WaitForShutdown()
}

// Handler returns the Gin engine with its one route, POST /v1/events.
func (b *bare) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.POST("/v1/events", b.events)
	return r
}

func (b *bare) events(c *gin.Context) {
	want := "Bearer " + b.token
	if subtle.ConstantTimeCompare([]byte(c.GetHeader("Authorization")), []byte(want)) != 1 {
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "missing or wrong bearer token"})
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, adapters.DefaultBodyLimit)
	var e adapters.Event
	if err := c.ShouldBindJSON(&e); err != nil {
		c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": "invalid JSON"})
		return
	}
	if err := e.Validate(""); err != nil {
		c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": err.Error()})
		return
	}
	data, err := json.Marshal(e)
	if err != nil {
		c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "encode event"})
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), barePublishTimeout)
	defer cancel()
	f, err := b.js.PublishMsgAsync(&nats.Msg{
		Subject: bareSubjectPrefix + "." + e.Source,
		Data:    data,
		Header:  nats.Header{jetstream.MsgIDHeader: []string{e.Key()}},
	})
	if err == nil {
		select {
		case <-f.Ok():
		case err = <-f.Err():
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": "not stored"})
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"accepted": 1, "ids": []string{e.ID}})
}

// runBare serves the bare handler on listen until ctx ends, with its
// JetStream store in a temporary directory removed afterwards.
func runBare(ctx context.Context, listen, token string, log *slog.Logger) error {
	dir, err := os.MkdirTemp("", "presence-load-bare-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := newBare(ctx, dir, token)
	if err != nil {
		return err
	}
	defer b.Close()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: b.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("bare handler listening", "addr", ln.Addr().String())
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
