package eventlog

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/presence-bridge/presence-bridge/internal/logbuf"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/internal/natstest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// TestLinkLoss: losing the NATS server is logged as a disconnect, its
// return as a reconnect, and the scrape helpers answer again after it.
func TestLinkLoss(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.ServerAt(t, -1, dir)
	port := srv.Addr().(*net.TCPAddr).Port
	addr := srv.ClientURL()
	cfg := config.Default().NATS
	cfg.Embedded, cfg.URLs = false, []string{addr}
	var logs logbuf.Buffer
	q := New(cfg, 16, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()
	if err := q.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if st, err := q.ConsumerState(ctx); err != nil || st.Pending != 0 {
		t.Fatalf("consumer state %+v, %v", st, err)
	}
	if n, err := q.DeadLetterCount(ctx); err != nil || n != 0 {
		t.Fatalf("dead letters %d, %v", n, err)
	}

	srv.Shutdown()
	srv.WaitForShutdown()
	waitLog(t, &logs, "nats disconnected")
	natstest.ServerAt(t, port, dir)
	waitLog(t, &logs, "nats reconnected")
	testpoll.UntilOK(t, "dead letters readable after the reconnect", func() error {
		_, err := q.DeadLetterCount(ctx)
		return err
	})
}

// waitLog waits until msg is logged.
func waitLog(t *testing.T, logs *logbuf.Buffer, msg string) {
	t.Helper()
	testpoll.Until(t, fmt.Sprintf("%q logged", msg), func() bool { return strings.Contains(logs.String(), msg) })
}
