package publish

import (
	"context"
	"net"
	"testing"
	"time"

	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/internal/natstest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs"
	"github.com/presence-bridge/presence-bridge/outputs/catalog"
	"github.com/presence-bridge/presence-bridge/outputs/cloudevent"
	natsout "github.com/presence-bridge/presence-bridge/outputs/nats"
)

// natsOutput is an `outputs:` entry of type nats, as the configuration
// gives it after its defaults.
func natsOutput(name string, skip []string) config.Output {
	n := &natsout.Config{PublishTimeout: 500 * time.Millisecond}
	n.SetDefaults()
	return config.Output{Name: name, Type: "nats", SkipSources: skip, NATS: n}
}

// stored returns the changes in the stream, in order.
func stored(t *testing.T, js jetstream.JetStream, stream string) []outputs.Change {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []outputs.Change
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		c, err := cloudevent.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// TestRealNATSFilter: through the catalog onto a real nats-server, a
// PBX's echo is skipped by the output that names the PBX and stored by
// the one that skips nothing.
func TestRealNATSFilter(t *testing.T) {
	js, _ := natstest.Start(t)
	all := natsOutput("all", []string{})
	notPBX := natsOutput("not-pbx", []string{"pbx"})
	notPBX.NATS.Stream, notPBX.NATS.SubjectPrefix, notPBX.NATS.Bucket = "TEAMS_NOT_PBX", "teams.notpbx", "TEAMS_NOT_PBX_LATEST"
	p, err := Open(context.Background(), []config.Output{all, notPBX}, catalog.Deps{JetStream: js}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	echo := change("bob", 1)
	echo.Origin, echo.Sources = outputs.OriginBridge, []string{"pbx"}
	teams := change("alice", 1)
	p.Publish(echo)
	p.Publish(teams)
	closeNow(t, p)
	if got := stored(t, js, all.NATS.Stream); len(got) != 2 {
		t.Errorf("output all stored %d changes, want 2", len(got))
	}
	got := stored(t, js, notPBX.NATS.Stream)
	if len(got) != 1 || got[0].ID != teams.ID {
		t.Errorf("output not-pbx stored %+v, want only %s", got, teams.ID)
	}
}

// TestRealNATSDownThenBack: while nats-server is down, changes wait
// (newest per person); when it is back the newest change of each person
// is stored once.
func TestRealNATSDownThenBack(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.ServerAt(t, -1, dir)
	port := srv.Addr().(*net.TCPAddr).Port
	// The client keeps its default reconnect buffer, as the bridge's
	// connection does: the NATS output itself refuses to publish while
	// disconnected, so nothing goes out late behind a newer change.
	nc, err := natsio.Connect(srv.ClientURL(), natsio.MaxReconnects(-1), natsio.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	bus := natsOutput("bus", []string{})
	p, err := Open(context.Background(), []config.Output{bus}, catalog.Deps{JetStream: js}, Options{Backoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer closeNow(t, p)

	srv.Shutdown()
	testpoll.Until(t, "the client to notice", func() bool { return nc.Status() != natsio.CONNECTED })
	p.Publish(change("bob", 1))
	testpoll.Until(t, "a failed delivery", func() bool { return p.Stats()[0].Failures > 0 })
	for n := 2; n <= 5; n++ {
		p.Publish(change("bob", n))
	}
	p.Publish(change("alice", 1))
	if s := p.Stats()[0]; s.Healthy || s.Queued != 2 {
		t.Fatalf("while nats is down: %+v", s)
	}

	natstest.ServerAt(t, port, dir)
	testpoll.Until(t, "both people published", func() bool { s := p.Stats()[0]; return s.Queued == 0 && s.Healthy })
	got := stored(t, js, bus.NATS.Stream)
	ids := map[string]int{}
	for _, c := range got {
		ids[c.ID]++
	}
	if len(got) != 2 || ids[change("bob", 5).ID] != 1 || ids[change("alice", 1).ID] != 1 {
		t.Errorf("stored %v, want bob's fifth change and alice's first, once each", ids)
	}
}
