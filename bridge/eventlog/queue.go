// Package eventlog connects the bridge to NATS JetStream: the embedded or
// external server, the events stream with its durable pull consumer, and
// the dead-letter stream, each with its limits. KeepConnecting retries
// external servers that are not there yet.
package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/internal/logthrottle"
)

// ErrUnavailable means JetStream could not take a message; the sender must
// try again later. A message whose publish failed this way may still have
// been stored (the acknowledgement can be lost during a reconnect), so a
// retry must carry the same message id.
var ErrUnavailable = errors.New("jetstream unavailable")

// ErrFull means JetStream refused a message for lack of space: the events
// stream reached its limits or the server's store is full. Such a message
// was not stored. Errors that match ErrFull match ErrUnavailable too.
var ErrFull = errors.New("jetstream full")

// fullError is an ErrFull with the reason JetStream gave.
type fullError struct{ reason string }

func (e *fullError) Error() string { return "JetStream is full: " + e.reason }

func (e *fullError) Is(target error) bool { return target == ErrFull || target == ErrUnavailable }

// Queue is the bridge's connection to JetStream. New makes one that is not
// connected yet; Connect connects it, and may be tried again until it
// succeeds. Every other method is safe to call at any time and answers
// ErrUnavailable while not connected.
type Queue struct {
	cfg        config.NATS
	log        *slog.Logger
	maxPending int
	conn       atomic.Pointer[conn]
	full       refusals
	errMu      sync.Mutex
	lastErr    error // why the last Connect failed
	// links keeps a flapping connection to a line per kind and interval.
	links *logthrottle.Throttle
}

// conn is one established connection with what was set up on it.
type conn struct {
	server *server.Server // nil when connected to external servers
	nc     *nats.Conn
	js     jetstream.JetStream
	events jetstream.Stream
}

// linkLogEvery is how often, at most, NATS disconnects (and reconnects)
// are logged; the next line counts those left out.
const linkLogEvery = 10 * time.Second

// New returns a queue for cfg that is not connected yet. maxPending is
// how many events the consumer hands out before earlier ones are settled,
// across every bridge: well within what the apply stage's lanes can hold
// (half, as users do not spread evenly over lanes), so that an event is
// seldom handed to a bridge that must give it back unread.
func New(cfg config.NATS, maxPending int, log *slog.Logger) *Queue {
	return &Queue{cfg: cfg, maxPending: maxPending, log: log, lastErr: errors.New("not connected yet"), links: logthrottle.New(linkLogEvery)}
}

// Connect starts the embedded server when configured, connects, and
// creates or updates the streams and the consumer. On failure nothing is
// left running and Connect may be called again. Once connected, a lost
// connection is re-established by the NATS client itself.
func (q *Queue) Connect(ctx context.Context) error {
	if q.conn.Load() != nil {
		return nil
	}
	c, err := q.connect(ctx)
	q.errMu.Lock()
	q.lastErr = err
	q.errMu.Unlock()
	if err != nil {
		return err
	}
	q.conn.Store(c)
	return nil
}

func (q *Queue) connect(ctx context.Context) (c *conn, err error) {
	c = &conn{}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	log := q.log
	opts := []nats.Option{
		nats.Name("presence-bridge"),
		nats.Timeout(q.cfg.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				q.links.Log(context.Background(), log, slog.LevelWarn, "disconnected", "nats disconnected; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			q.links.Log(context.Background(), log, slog.LevelInfo, "reconnected", "nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Warn("nats connection closed", "err", err)
			}
		}),
	}
	url := ""
	if q.cfg.Embedded {
		c.server, err = startEmbedded(q.cfg)
		if err != nil {
			return c, err
		}
		opts = append(opts, nats.InProcessServer(c.server))
	} else {
		url = joinURLs(q.cfg.URLs)
		opts = append(opts, externalOptions(q.cfg)...)
	}
	c.nc, err = nats.Connect(url, opts...)
	if err != nil {
		return c, fmt.Errorf("connect to nats: %w", err)
	}
	c.js, err = jetstream.New(c.nc)
	if err != nil {
		return c, fmt.Errorf("jetstream: %w", err)
	}
	c.events, err = q.ensureStreams(ctx, c.js)
	return c, err
}

// close drains the connection and stops the embedded server.
func (c *conn) close() {
	if c.nc != nil {
		_ = c.nc.Drain()
		deadline := time.Now().Add(5 * time.Second)
		for !c.nc.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		c.nc.Close()
	}
	if c.server != nil {
		c.server.Shutdown()
		c.server.WaitForShutdown()
	}
}

// current returns the connection, or an ErrUnavailable saying why there is
// none.
func (q *Queue) current() (*conn, error) {
	if c := q.conn.Load(); c != nil {
		return c, nil
	}
	q.errMu.Lock()
	defer q.errMu.Unlock()
	return nil, fmt.Errorf("%w: NATS is not connected (%v)", ErrUnavailable, q.lastErr)
}

func startEmbedded(cfg config.NATS) (*server.Server, error) {
	opts := &server.Options{
		ServerName:        "presence-bridge",
		JetStream:         true,
		StoreDir:          cfg.StoreDir,
		JetStreamMaxStore: cfg.MaxStore,
		DontListen:        cfg.Listen == "",
		NoSigs:            true,
		NoLog:             true,
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

func (q *Queue) ensureStreams(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	events, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        q.cfg.Stream,
		Description: "Presence events from webhooks and bus publishers.",
		Subjects:    []string{q.cfg.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Duplicates:  q.cfg.DuplicateWindow,
		Replicas:    q.cfg.Replicas,
		// A full stream refuses new events (answered 503) rather than
		// dropping events it already acknowledged.
		MaxBytes: q.cfg.StreamMaxBytes,
		MaxMsgs:  limit(q.cfg.StreamMaxMsgs),
		Discard:  jetstream.DiscardNew,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", q.cfg.Stream, err)
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        q.cfg.DeadLetter,
		Description: "Presence events that could not be applied, with the reason.",
		Subjects:    []string{q.deadLetterSubject() + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    q.cfg.Replicas,
		// Past its limits the stream drops its oldest records, so dead
		// letters can never stop the bridge.
		MaxBytes: q.cfg.DeadLetterMaxBytes,
		MaxMsgs:  limit(q.cfg.DeadLetterMaxMsgs),
		MaxAge:   q.cfg.DeadLetterMaxAge,
		Discard:  jetstream.DiscardOld,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", q.cfg.DeadLetter, err)
	}
	_, err = events.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       q.cfg.Consumer,
		Description:   "The bridge's workers.",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: max(q.maxPending, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", q.cfg.Consumer, err)
	}
	return events, nil
}

// limit turns "0 means none" into JetStream's -1.
func limit(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// JetStream returns the JetStream context, for the state and lease KV buckets, or
// nil while not connected.
func (q *Queue) JetStream() jetstream.JetStream {
	if c := q.conn.Load(); c != nil {
		return c.js
	}
	return nil
}

// Conn returns the NATS connection, or nil while not connected.
func (q *Queue) Conn() *nats.Conn {
	if c := q.conn.Load(); c != nil {
		return c.nc
	}
	return nil
}

// Subject returns the subject events of a source are published on.
func (q *Queue) Subject(source string) string { return q.cfg.SubjectPrefix + "." + source }

func (q *Queue) deadLetterSubject() string { return "presence.deadletter." + q.cfg.Stream }

// Publish stores events in JetStream and returns once every one is
// acknowledged. Each is published with Nats-Msg-Id source:id, so a retried
// event is stored once within nats.duplicate_window. A failure wraps
// ErrUnavailable, and ErrFull when JetStream refused for lack of space; on
// any other failure an event may or may not have been stored.
func (q *Queue) Publish(ctx context.Context, events []adapters.Event) error {
	c, err := q.current()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, q.cfg.PublishTimeout)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, 0, len(events))
	for _, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", e.Key(), err)
		}
		f, err := c.js.PublishMsgAsync(&nats.Msg{
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
			return q.refused(err)
		case <-ctx.Done():
			return fmt.Errorf("%w: no acknowledgement within %s: %v", ErrUnavailable, q.cfg.PublishTimeout, ctx.Err())
		}
	}
	q.full.stored(q.log, time.Now())
	return nil
}

// refused turns a write JetStream refused into ErrFull when it was for
// lack of space, noting it for Ready and the log, and into ErrUnavailable
// otherwise.
func (q *Queue) refused(err error) error {
	reason := fullReason(err)
	if reason == "" {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	q.full.refused(q.log, reason, time.Now())
	return &fullError{reason: reason}
}

// fullReason says why JetStream refused a write for lack of space, or
// returns "" when err is something else.
func fullReason(err error) string {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return ""
	}
	switch apiErr.ErrorCode {
	case jsErrCodeInsufficientResources, jsErrCodeAccountResourcesExceeded:
		return "the JetStream store is full (" + apiErr.Description + ")"
	case jsErrCodeStreamStoreFailed:
		if strings.Contains(apiErr.Description, "maximum bytes") || strings.Contains(apiErr.Description, "maximum messages") {
			return "the events stream reached its limit (" + apiErr.Description + ")"
		}
	}
	return ""
}

// JetStream error codes the client library has no names for.
const (
	jsErrCodeAccountResourcesExceeded jetstream.ErrorCode = 10002
	jsErrCodeInsufficientResources    jetstream.ErrorCode = 10023
	jsErrCodeStreamStoreFailed        jetstream.ErrorCode = 10077
)

// streamFullMargin is how much room the events stream must have left to
// count as able to take events.
const streamFullMargin = 4096

// Ready reports whether the queue can take events: NATS connected, the
// events stream below its limits, the store not full, and no write
// refused for lack of space in the last few seconds. The error says which.
func (q *Queue) Ready(ctx context.Context) error {
	c, err := q.current()
	if err != nil {
		return err
	}
	if !c.nc.IsConnected() {
		return fmt.Errorf("%w: NATS connection lost, reconnecting", ErrUnavailable)
	}
	info, err := c.events.Info(ctx)
	if err != nil {
		return fmt.Errorf("%w: stream %s: %v", ErrUnavailable, q.cfg.Stream, err)
	}
	if m := info.Config.MaxBytes; m > 0 && info.State.Bytes+streamFullMargin > uint64(m) {
		return &fullError{reason: fmt.Sprintf("the events stream %s holds %d of its %d bytes (nats.stream_max_bytes)", q.cfg.Stream, info.State.Bytes, m)}
	}
	if m := info.Config.MaxMsgs; m > 0 && info.State.Msgs >= uint64(m) {
		return &fullError{reason: fmt.Sprintf("the events stream %s holds %d of its %d messages (nats.stream_max_msgs)", q.cfg.Stream, info.State.Msgs, m)}
	}
	if q.cfg.Embedded && q.cfg.MaxStore > 0 {
		account, err := c.js.AccountInfo(ctx)
		if err != nil {
			return fmt.Errorf("%w: account info: %v", ErrUnavailable, err)
		}
		if int64(account.Store) >= q.cfg.MaxStore {
			return &fullError{reason: fmt.Sprintf("the JetStream store holds %d of its %d bytes (nats.max_store)", account.Store, q.cfg.MaxStore)}
		}
	}
	if reason := q.full.recent(time.Now()); reason != "" {
		return &fullError{reason: reason}
	}
	return nil
}

// Close disconnects and stops the embedded server. It is safe to call
// more than once; Connect may be called again afterwards.
func (q *Queue) Close() {
	if c := q.conn.Swap(nil); c != nil {
		c.close()
	}
}

// EmbeddedServer returns the in-process NATS server, or nil when connected
// to external servers.
func (q *Queue) EmbeddedServer() *server.Server {
	if c := q.conn.Load(); c != nil {
		return c.server
	}
	return nil
}
