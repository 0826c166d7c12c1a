package bridge_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/internal/freeport"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// unusedLoopbackAddr returns a loopback address on which nothing listens.
func unusedLoopbackAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// startExternalNATS runs a real NATS server with JetStream on addr until
// the test ends.
func startExternalNATS(t *testing.T, addr string) *server.Server {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{Host: host, Port: p, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// externalConfig is testConfig with the external NATS server at addr
// instead of the embedded one.
func externalConfig(t *testing.T, addr string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(testConfig(t)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.NATS.Embedded = false
	cfg.NATS.URLs = []string{"nats://" + addr}
	cfg.NATS.ConnectTimeout = 2 * time.Second
	return cfg
}

// errorCodeMessage returns the code and message of an error answer.
func errorCodeMessage(r response) (string, string) {
	e, _ := r.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	message, _ := e["message"].(string)
	return code, message
}

// waitUntilReady polls /readyz until it answers 200; within, the wait a
// test expects, is raised to testpoll.Deadline.
func waitUntilReady(t *testing.T, b *bridge.Bridge, within time.Duration) {
	t.Helper()
	testpoll.WithinOK(t, max(within, testpoll.Deadline), "/readyz to answer 200", func() error {
		if r := getAnswer(t, b, "/readyz"); r.status != http.StatusOK {
			return fmt.Errorf("%d %v", r.status, r.body)
		}
		return nil
	})
}

// stopAtCleanup stops b when the test ends, before any cleanup registered
// earlier (such as a NATS server's shutdown).
func stopAtCleanup(t *testing.T, b *bridge.Bridge) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := b.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

// TestStartsWithoutNATS starts a bridge whose external NATS server is not
// there yet: it serves HTTP, says why it is not ready, answers ingest with
// 503, and connects and works once the server comes, without a restart.
func TestStartsWithoutNATS(t *testing.T) {
	addr := unusedLoopbackAddr(t)
	b, _ := startBridgeWithLogs(t, externalConfig(t, addr))

	if r := getAnswer(t, b, "/healthz"); r.status != http.StatusOK {
		t.Fatalf("healthz %d %v", r.status, r.body)
	}
	r := getAnswer(t, b, "/readyz")
	if _, message := errorCodeMessage(r); r.status != http.StatusServiceUnavailable || !strings.Contains(message, "NATS") {
		t.Fatalf("readyz without NATS: %d %v, want 503 naming NATS", r.status, r.body)
	}
	r = postEvent(t, b, callEvent("w1", "alice@contoso.example", "c1", "active", time.Now()))
	if code, _ := errorCodeMessage(r); r.status != http.StatusServiceUnavailable || code != "queue_unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("ingest without NATS: %d %v (Retry-After %q), want 503 queue_unavailable with Retry-After", r.status, r.body, r.header.Get("Retry-After"))
	}

	startExternalNATS(t, addr)
	stopAtCleanup(t, b)
	waitUntilReady(t, b, 60*time.Second)
	if r := postEvent(t, b, callEvent("w1", "alice@contoso.example", "c1", "active", time.Now())); r.status != http.StatusAccepted {
		t.Fatalf("ingest once NATS is up: %d %v", r.status, r.body)
	}
	waitPresence(t, b, aliceID, "Busy/InACall", 30*time.Second)
}

// TestStopWhileWaitingForNATS stops a bridge that is still waiting for its
// NATS server: Stop returns cleanly and soon, and HTTP is closed.
func TestStopWhileWaitingForNATS(t *testing.T) {
	cfg := externalConfig(t, unusedLoopbackAddr(t))
	b, err := bridge.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatalf("start without NATS: %v", err)
	}
	addr := b.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Stop(ctx); err != nil {
		t.Fatalf("stop while waiting for NATS: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("stop took the whole timeout")
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("HTTP still answers after Stop")
	}
}

// stallingProxy forwards TCP connections to a NATS server. While stalled it
// holds back what the server sends (acknowledgements, deliveries) and still
// forwards what clients send, the way a connection in trouble loses
// acknowledgements of messages the server did store.
type stallingProxy struct {
	ln   net.Listener
	gate sync.RWMutex
}

func startStallingProxy(t *testing.T, target string) *stallingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallingProxy{ln: ln}
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			upstream, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			conns.Add(2)
			go func() { defer conns.Done(); _, _ = io.Copy(upstream, client); upstream.Close() }()
			go func() { defer conns.Done(); p.forward(client, upstream); client.Close() }()
		}
	}()
	return p
}

// forward copies from the server to the client, waiting at the gate before
// each write.
func (p *stallingProxy) forward(client, upstream net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := upstream.Read(buf)
		if n > 0 {
			p.gate.RLock()
			p.gate.RUnlock()
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *stallingProxy) addr() string { return p.ln.Addr().String() }
func (p *stallingProxy) stall()       { p.gate.Lock() }
func (p *stallingProxy) resume()      { p.gate.Unlock() }

// TestPublishTimeoutRetrySafe loses the acknowledgement of a stored event:
// the bridge answers 503 saying the event may or may not be stored and to
// retry with the same id, and the retry is answered 202 while the event is
// stored and applied once.
func TestPublishTimeoutRetrySafe(t *testing.T) {
	natsAddr := unusedLoopbackAddr(t)
	startExternalNATS(t, natsAddr)
	proxy := startStallingProxy(t, natsAddr)
	cfg := externalConfig(t, proxy.addr())
	cfg.NATS.PublishTimeout = 500 * time.Millisecond
	b, _ := startBridgeWithLogs(t, cfg)
	stopAtCleanup(t, b)
	waitUntilReady(t, b, 60*time.Second)

	body := callEvent("retry-1", "bob@contoso.example", "c1", "active", time.Now())
	proxy.stall()
	r := postEvent(t, b, body)
	proxy.resume()
	code, message := errorCodeMessage(r)
	if r.status != http.StatusServiceUnavailable || code != "queue_unavailable" {
		t.Fatalf("publish without acknowledgement: %d %v, want 503 queue_unavailable", r.status, r.body)
	}
	for _, want := range []string{"may or may not be stored", "same ids", "nats.duplicate_window, 1h0m0s"} {
		if !strings.Contains(message, want) {
			t.Errorf("503 message %q does not say %q", message, want)
		}
	}
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || time.Duration(s)*time.Second >= cfg.NATS.DuplicateWindow {
		t.Errorf("Retry-After %q, want whole seconds well inside the duplicate window", r.header.Get("Retry-After"))
	}

	// The event was stored although the answer was 503.
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	lastSeq := func() uint64 {
		t.Helper()
		s, err := js.Stream(context.Background(), "PRESENCE_EVENTS")
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	testpoll.Until(t, "the event answered 503 to be stored (else the test lost no acknowledgement)", func() bool { return lastSeq() > 0 })

	// The sender retries with the same id, as the answer says.
	waitAccepted(t, b, body, 30*time.Second)
	waitPresence(t, b, bobID, "Busy/InACall", 30*time.Second)
	// A later event proves the worker went past the retried one.
	if r := postEvent(t, b, callEvent("retry-2", "alice@contoso.example", "c2", "active", time.Now())); r.status != http.StatusAccepted {
		t.Fatalf("post: %d %v", r.status, r.body)
	}
	waitPresence(t, b, aliceID, "Busy/InACall", 30*time.Second)
	if n := lastSeq(); n != 2 {
		t.Errorf("the stream stored %d events, want 2 (the retry is a duplicate)", n)
	}
	if n := countRequests(b, "/users/"+bobID+"/presence/setPresence"); n != 1 {
		t.Errorf("setPresence for bob reached Graph %d times, want 1", n)
	}
}
