// Package natstest starts a real in-process nats-server with JetStream for
// tests, on a loopback port with a temporary store.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server runs the server until the test ends.
func Server(t testing.TB) *server.Server {
	t.Helper()
	return ServerAt(t, -1, t.TempDir())
}

// ServerAt runs the server on 127.0.0.1:port (-1 picks one) with its
// store in dir until the test ends, so that a test can shut it down and
// start it again where its clients expect it, with what it stored.
func ServerAt(t testing.TB, port int, dir string) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	return srv
}

// Start runs a server and connects to it; both stop when the test ends,
// or earlier through the returned stop.
func Start(t testing.TB) (jetstream.JetStream, func()) {
	t.Helper()
	srv := Server(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stop := func() { nc.Close(); srv.Shutdown() }
	t.Cleanup(stop)
	return js, stop
}
