// Package queue connects the bridge to NATS JetStream: the embedded or
// external server, the events stream with its durable pull consumer, and
// the dead-letter stream.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// ErrUnavailable means JetStream could not take a message; the sender must
// try again later.
var ErrUnavailable = errors.New("jetstream unavailable")

// Queue is the bridge's connection to JetStream.
type Queue struct {
	cfg    config.NATS
	log    *slog.Logger
	server *server.Server // nil when connected to external servers
	nc     *nats.Conn
	js     jetstream.JetStream
	events jetstream.Stream
}

// Open starts the embedded server when configured, connects, and creates or
// updates the streams and the consumer.
func Open(ctx context.Context, cfg config.NATS, log *slog.Logger) (*Queue, error) {
	q := &Queue{cfg: cfg, log: log}
	opts := []nats.Option{
		nats.Name("presence-bridge"),
		nats.Timeout(cfg.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("nats reconnected") }),
	}
	url := ""
	if cfg.Embedded {
		srv, err := startEmbedded(cfg)
		if err != nil {
			return nil, err
		}
		q.server = srv
		opts = append(opts, nats.InProcessServer(srv))
	} else {
		url = joinURLs(cfg.URLs)
		opts = append(opts, externalOptions(cfg)...)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	q.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	q.js = js
	if err := q.ensureStreams(ctx); err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

func startEmbedded(cfg config.NATS) (*server.Server, error) {
	opts := &server.Options{
		ServerName: "presence-bridge",
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		DontListen: cfg.Listen == "",
		NoSigs:     true,
		NoLog:      true,
	}
	if cfg.Listen != "" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats.listen: %w", err)
		}
		opts.Host = host
		opts.Port, err = strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("nats.listen port: %w", err)
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded nats: not ready within 10s")
	}
	return srv, nil
}

func externalOptions(cfg config.NATS) []nats.Option {
	var opts []nats.Option
	if cfg.CredentialsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredentialsFile))
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.TLS.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.TLS.CAFile))
	}
	if cfg.TLS.CertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.TLS.CertFile, cfg.TLS.KeyFile))
	}
	return opts
}

func joinURLs(urls []string) string {
	out := ""
	for i, u := range urls {
		if i > 0 {
			out += ","
		}
		out += u
	}
	return out
}

func (q *Queue) ensureStreams(ctx context.Context) error {
	events, err := q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        q.cfg.Stream,
		Description: "Presence events from webhooks and bus publishers.",
		Subjects:    []string{q.cfg.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Duplicates:  q.cfg.DuplicateWindow,
		Replicas:    q.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", q.cfg.Stream, err)
	}
	q.events = events
	_, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        q.cfg.DeadLetter,
		Description: "Presence events that could not be applied, with the reason.",
		Subjects:    []string{q.deadLetterSubject() + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      30 * 24 * time.Hour,
		Replicas:    q.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", q.cfg.DeadLetter, err)
	}
	_, err = events.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       q.cfg.Consumer,
		Description:   "The bridge's workers.",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 10000,
	})
	if err != nil {
		return fmt.Errorf("create consumer %s: %w", q.cfg.Consumer, err)
	}
	return nil
}

// JetStream returns the JetStream context, for the engine's KV buckets.
func (q *Queue) JetStream() jetstream.JetStream { return q.js }

// Conn returns the NATS connection.
func (q *Queue) Conn() *nats.Conn { return q.nc }

// Subject returns the subject events of a source are published on.
func (q *Queue) Subject(source string) string { return q.cfg.SubjectPrefix + "." + source }

func (q *Queue) deadLetterSubject() string { return "presence.deadletter." + q.cfg.Stream }

// Publish stores events in JetStream and returns once every one is
// acknowledged. Each is published with Nats-Msg-Id source:id, so a retried
// event is stored once. A failure wraps ErrUnavailable.
func (q *Queue) Publish(ctx context.Context, events []adapters.Event) error {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.PublishTimeout)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, 0, len(events))
	for _, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", e.Key(), err)
		}
		f, err := q.js.PublishMsgAsync(&nats.Msg{
			Subject: q.Subject(e.Source),
			Data:    data,
			Header:  nats.Header{jetstream.MsgIDHeader: []string{e.Key()}},
		})
		if err != nil {
			return fmt.Errorf("%w: publish %s: %v", ErrUnavailable, e.Key(), err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		case <-ctx.Done():
			return fmt.Errorf("%w: no acknowledgement: %v", ErrUnavailable, ctx.Err())
		}
	}
	return nil
}

// Ready reports whether JetStream answers and the events stream exists.
func (q *Queue) Ready(ctx context.Context) error {
	if q.nc == nil || !q.nc.IsConnected() {
		return fmt.Errorf("%w: not connected", ErrUnavailable)
	}
	if _, err := q.events.Info(ctx); err != nil {
		return fmt.Errorf("%w: stream %s: %v", ErrUnavailable, q.cfg.Stream, err)
	}
	return nil
}

// Close drains the connection and stops the embedded server. It is safe to
// call more than once.
func (q *Queue) Close() {
	if q.nc != nil {
		_ = q.nc.Drain()
		deadline := time.Now().Add(5 * time.Second)
		for !q.nc.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		q.nc.Close()
	}
	if q.server != nil {
		q.server.Shutdown()
		q.server.WaitForShutdown()
		q.server = nil
	}
}

// EmbeddedServer returns the in-process NATS server, or nil when connected
// to external servers.
func (q *Queue) EmbeddedServer() *server.Server { return q.server }
