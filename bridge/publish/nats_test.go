package publish

import (
	"context"
	"encoding/json"
	"net"
	"slices"
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
	// Both people wait, each once; a worker may have one of them out for
	// a try at any moment, so wait for a look between tries.
	testpoll.Until(t, "both people waiting while nats is down", func() bool {
		s := p.Stats()[0]
		return !s.Healthy && s.Queued == 2
	})

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

// TestRealNATSPairs: onto a real nats-server, an output limited to Do not
// disturb and calls stores only those, each move away from them as
// Available/Available, and nothing while the person stays among pairs it
// does not send; its KV bucket ends on Available while the person sits in
// a meeting, so no receiver stays busy. A person it lists with [] is not
// stored at all; the unfiltered output stores every pair as it is.
func TestRealNATSPairs(t *testing.T) {
	js, _ := natstest.Start(t)
	all := natsOutput("all", []string{})
	pbx := natsOutput("pbx", []string{})
	pbx.NATS.Stream, pbx.NATS.SubjectPrefix, pbx.NATS.Bucket = "TEAMS_PBX", "teams.pbx", "TEAMS_PBX_LATEST"
	pbx.Pairs = []string{"DoNotDisturb/*", "Busy/InACall", "Busy/InAConferenceCall"}
	pbx.People = map[string][]string{"user-carol@" + tenant: {}}
	p, err := Open(context.Background(), []config.Output{all, pbx}, catalog.Deps{JetStream: js}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeNow(t, p)

	steps := []outputs.Pair{
		{Availability: "Available", Activity: "Available"},
		{Availability: "DoNotDisturb", Activity: "Presenting"},
		{Availability: "Away", Activity: "Away"},
		{Availability: "Busy", Activity: "InAMeeting"},
		{Availability: "Busy", Activity: "InACall"},
		{Availability: "Busy", Activity: "InAMeeting"},
		{Availability: "Away", Activity: "BeRightBack"},
	}
	var offered uint64
	for _, person := range []string{"alice", "carol"} {
		var previous *outputs.Pair
		for i, pair := range steps {
			c := change(person, i+1)
			c.Availability, c.Activity, c.Previous = pair.Availability, pair.Activity, previous
			previous = &steps[i]
			p.Publish(c)
			offered++
			// One change at a time, so that newest-wins does not fold
			// them: each output delivers or skips it before the next.
			testpoll.Until(t, "both outputs settle the change", func() bool {
				for _, st := range p.Stats() {
					if st.Published[outputs.OriginTeams]+st.Skipped != offered {
						return false
					}
				}
				return true
			})
		}
	}
	closeNow(t, p)

	var got []string
	for _, c := range stored(t, js, pbx.NATS.Stream) {
		if c.View.ID != "alice" {
			t.Errorf("output pbx stored %s's change %s; carol is listed with []", c.View.ID, c.ID)
			continue
		}
		got = append(got, c.Availability+"/"+c.Activity)
	}
	want := []string{
		"Available/Available", // first sighting, not sent: cleared
		"DoNotDisturb/Presenting",
		"Available/Available", // Away after DND: cleared
		"Busy/InACall",        // (the meeting before it was not sent)
		"Available/Available", // meeting after the call: cleared
	}
	if !slices.Equal(got, want) {
		t.Errorf("output pbx stored %q\nwant %q", got, want)
	}
	if n := len(stored(t, js, all.NATS.Stream)); n != 2*len(steps) {
		t.Errorf("output all stored %d changes, want %d", n, 2*len(steps))
	}
	kv, err := js.KeyValue(context.Background(), pbx.NATS.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(context.Background(), natsout.Key(tenant, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	var latest outputs.View
	if err := json.Unmarshal(entry.Value(), &latest); err != nil {
		t.Fatal(err)
	}
	if latest.Availability != "Available" || latest.Activity != "Available" {
		t.Errorf("output pbx's bucket ends on %s/%s; alice is in a meeting, which it does not send: want Available/Available", latest.Availability, latest.Activity)
	}
}
