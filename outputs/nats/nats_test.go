package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/internal/natstest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs"
	"github.com/presence-bridge/presence-bridge/outputs/cloudevent"
	"github.com/presence-bridge/presence-bridge/outputs/outputstest"
)

// bus is a real nats-server with JetStream in this process, on a loopback
// port and a store that survive restart.
type bus struct {
	t     *testing.T
	port  int
	dir   string
	srv   *server.Server
	nc    *natsio.Conn
	js    jetstream.JetStream
	names atomic.Int32
}

func startBus(t *testing.T) *bus {
	t.Helper()
	b := &bus{t: t, port: -1, dir: t.TempDir()}
	b.start()
	nc, err := natsio.Connect(b.srv.ClientURL(), natsio.MaxReconnects(-1), natsio.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	b.nc = nc
	if b.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *bus) start() {
	b.t.Helper()
	b.srv = natstest.ServerAt(b.t, b.port, b.dir)
	b.port = b.srv.Addr().(*net.TCPAddr).Port
}

// output builds an output with names of its own on the bus.
func (b *bus) output(t *testing.T) (*Output, Config) {
	t.Helper()
	n := b.names.Add(1)
	cfg := Config{Name: "bus", Stream: fmt.Sprintf("TEAMS_%d", n), SubjectPrefix: fmt.Sprintf("teams%d.presence", n), Bucket: fmt.Sprintf("LATEST_%d", n), PublishTimeout: time.Second}
	out, err := New(context.Background(), b.js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetDefaults()
	return out, cfg
}

// message is a stored change as a receiver sees it.
type message struct {
	subject string
	msgID   string
	data    []byte
	change  outputs.Change
}

// read returns every message in the stream, in order.
func (b *bus) read(t *testing.T, stream string) []message {
	t.Helper()
	ctx := context.Background()
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []message
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		c, err := cloudevent.Decode(m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, message{subject: m.Subject, msgID: m.Header.Get(jetstream.MsgIDHeader), data: m.Data, change: c})
	}
	return out
}

func TestConformance(t *testing.T) {
	b := startBus(t)
	outputstest.Run(t, outputstest.Suite{
		Package: "github.com/presence-bridge/presence-bridge/outputs/nats",
		New: func(t *testing.T) (outputs.Output, func(*testing.T) []outputs.Change) {
			out, cfg := b.output(t)
			return out, func(t *testing.T) []outputs.Change {
				var list []outputs.Change
				for _, m := range b.read(t, cfg.Stream) {
					list = append(list, m.change)
				}
				return list
			}
		},
		BadConfigs: []outputstest.BadConfig{
			bad(b.js, "stream", Config{Stream: "A.B"}),
			bad(b.js, "subject_prefix", Config{SubjectPrefix: "presence.*"}),
			bad(b.js, "bucket", Config{Bucket: "A B"}),
			bad(b.js, "max_bytes", Config{MaxBytes: 10}),
			bad(b.js, "duplicate_window", Config{MaxAge: time.Hour, DuplicateWindow: 2 * time.Hour}),
			bad(nil, "no JetStream", Config{}),
			// A prefix that overlaps another output's stream is refused by
			// the server, and the error names the stream.
			bad(b.js, "stream OVERLAP", Config{Stream: "OVERLAP", Bucket: "OVERLAP_LATEST", SubjectPrefix: "teams1.presence"}),
		},
	})
}

// TestStreamAndLatest: changes of people in dotted tenants, with UPNs,
// land on subjects of exactly prefix + two tokens that decode back to the
// tenant and the object id, as CloudEvents carrying the issue's
// attributes; the bucket holds each person's newest view under the
// documented key.
func TestStreamAndLatest(t *testing.T) {
	b := startBus(t)
	out, cfg := b.output(t)
	defer out.Close()
	ctx := context.Background()
	people := []struct{ tenant, id, user string }{
		{"contoso.example", "4ae1f0d6-0000-4000-8000-000000000001", "alice.smith@contoso.example"},
		{"sub.fabrikam.co.uk", "bob.id.with.dots", "bob@sub.fabrikam.co.uk"},
		{"contoso.example", "*", ">@x y"},
	}
	for _, p := range people {
		for n := 1; n <= 2; n++ {
			c := outputstest.Change(p.tenant, p.id, n)
			c.User = p.user
			if err := out.Publish(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	msgs := b.read(t, cfg.Stream)
	if len(msgs) != 2*len(people) {
		t.Fatalf("%d messages, want %d", len(msgs), 2*len(people))
	}
	for i, m := range msgs {
		p := people[i/2]
		toks := strings.Split(strings.TrimPrefix(m.subject, cfg.SubjectPrefix+"."), ".")
		if !strings.HasPrefix(m.subject, cfg.SubjectPrefix+".") || len(toks) != 2 {
			t.Fatalf("subject %q is not prefix + two tokens", m.subject)
		}
		tenant, err1 := ParseToken(toks[0])
		id, err2 := ParseToken(toks[1])
		if tenant != p.tenant || id != p.id || err1 != nil || err2 != nil {
			t.Errorf("subject %q decodes to %q %q (%v %v), want %q %q", m.subject, tenant, id, err1, err2, p.tenant, p.id)
		}
		var ce map[string]any
		if err := json.Unmarshal(m.data, &ce); err != nil {
			t.Fatal(err)
		}
		want := outputstest.Change(p.tenant, p.id, i%2+1)
		for k, v := range map[string]any{
			"specversion": "1.0", "id": want.ID, "source": "presence-bridge/" + p.tenant, "type": "presence.teams.changed",
			"subject": p.id, "datacontenttype": "application/json", "time": want.Since.Format(time.RFC3339Nano),
		} {
			if ce[k] != v {
				t.Errorf("message %d: %s = %v, want %v", i, k, ce[k], v)
			}
		}
		if m.msgID != want.ID {
			t.Errorf("message %d: Nats-Msg-Id %q, want %q", i, m.msgID, want.ID)
		}
		if m.change.User != p.user || m.change.Availability != want.Availability {
			t.Errorf("message %d: data %+v", i, m.change)
		}
		if (i%2 == 1) != (m.change.Previous != nil) {
			t.Errorf("message %d: previous %+v", i, m.change.Previous)
		}
	}
	kv, err := b.js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range people {
		entry, err := kv.Get(ctx, Token(p.tenant)+"."+Token(p.id))
		if err != nil {
			t.Fatalf("latest of %s: %v", p.user, err)
		}
		var v outputs.View
		if err := json.Unmarshal(entry.Value(), &v); err != nil || v.User != p.user || v.SequenceNumber != outputstest.Change("", "", 2).SequenceNumber {
			t.Errorf("latest of %s: %+v %v", p.user, v, err)
		}
	}
}

// TestDedup: a change offered again, even after a newer one (a takeover
// re-reading the past) or after its stream message was stored but its
// view was not (the bucket write failed), is stored once; the stream's
// Nats-Msg-Id drops the copy.
func TestDedup(t *testing.T) {
	b := startBus(t)
	out, cfg := b.output(t)
	defer out.Close()
	ctx := context.Background()
	id := "4ae1f0d6-0000-4000-8000-000000000001"
	first, second := outputstest.Change("contoso.example", id, 1), outputstest.Change("contoso.example", id, 2)
	for _, c := range []outputs.Change{first, second, first, second} {
		if err := out.Publish(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if msgs := b.read(t, cfg.Stream); len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	// The older change offered last does not take the bucket back.
	if err := out.Publish(ctx, first); err != nil {
		t.Fatal(err)
	}
	kv, _ := b.js.KeyValue(ctx, cfg.Bucket)
	if entry, err := kv.Get(ctx, Key("contoso.example", id)); err != nil || !strings.Contains(string(entry.Value()), `"sequenceNumber":"`+second.SequenceNumber+`"`) {
		t.Fatalf("latest after an older change: %s %v", entry.Value(), err)
	}
	// The bucket loses the view, as if the write after the stream's had
	// failed: offered again, the change is not stored twice, and the
	// bucket gets the view.
	if err := kv.Delete(ctx, Key("contoso.example", id)); err != nil {
		t.Fatal(err)
	}
	if err := out.Publish(ctx, second); err != nil {
		t.Fatal(err)
	}
	if msgs := b.read(t, cfg.Stream); len(msgs) != 2 {
		t.Errorf("%d messages after the retry, want 2", len(msgs))
	}
	if entry, err := kv.Get(ctx, Key("contoso.example", id)); err != nil || !strings.Contains(string(entry.Value()), second.SequenceNumber) {
		t.Errorf("latest after the retry: %v", err)
	}
}

// TestRetryPastDuplicateWindow: a change whose stream message was stored
// but whose view was not (the bucket was full), offered again after the
// stream's duplicate window has passed, is still stored once, and the
// bucket gets the view.
func TestRetryPastDuplicateWindow(t *testing.T) {
	b := startBus(t)
	ctx := context.Background()
	cfg := Config{Name: "bus", Stream: "TEAMS_WINDOW", SubjectPrefix: "window.presence", Bucket: "LATEST_WINDOW",
		DuplicateWindow: time.Second, BucketMaxBytes: 1 << 20, PublishTimeout: time.Second}
	out, err := New(ctx, b.js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	kv, err := b.js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	// Fill the bucket, so that the view's write fails after the stream's.
	puts := 0
	for _, size := range []int{64 << 10, 4 << 10, 256, 16} {
		for ; ; puts++ {
			if _, err := kv.Put(ctx, fmt.Sprintf("junk%d", puts), make([]byte, size)); err != nil {
				break
			}
			if puts > 1000 {
				t.Fatal("the bucket takes more than its max bytes")
			}
		}
	}
	c := outputstest.Change("contoso.example", "4ae1f0d6-0000-4000-8000-000000000001", 1)
	if err := out.Publish(ctx, c); err == nil {
		t.Fatal("published into a full bucket")
	}
	subject := out.Subject(c.Tenant, c.View.ID)
	onSubject := func() int {
		n := 0
		for _, m := range b.read(t, cfg.Stream) {
			if m.subject == subject {
				n++
			}
		}
		return n
	}
	if n := onSubject(); n != 1 {
		t.Fatalf("%d messages after the failed bucket write, want 1", n)
	}
	// A probe id stored now is forgotten with the change's: wait until
	// the stream stores the probe again, its duplicate window over.
	other := outputstest.Change(c.Tenant, "probe", 1)
	probe := natsio.NewMsg(out.Subject(other.Tenant, other.View.ID))
	probe.Header.Set(jetstream.MsgIDHeader, other.ID)
	if probe.Data, err = cloudevent.Encode(other); err != nil {
		t.Fatal(err)
	}
	if _, err := b.js.PublishMsg(ctx, probe); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "the duplicate window to pass", func() bool {
		ack, err := b.js.PublishMsg(ctx, probe)
		return err == nil && !ack.Duplicate
	})
	ks, err := b.js.Stream(ctx, "KV_"+cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if err := out.Publish(ctx, c); err != nil {
		t.Fatal(err)
	}
	if n := onSubject(); n != 1 {
		t.Errorf("%d messages after the retry past the duplicate window, want 1", n)
	}
	if entry, err := kv.Get(ctx, Key(c.Tenant, c.View.ID)); err != nil || !strings.Contains(string(entry.Value()), c.SequenceNumber) {
		t.Errorf("latest after the retry: %v", err)
	}
	// The next change is stored as usual.
	next := outputstest.Change(c.Tenant, c.View.ID, 2)
	if err := out.Publish(ctx, next); err != nil {
		t.Fatal(err)
	}
	if n := onSubject(); n != 2 {
		t.Errorf("%d messages after the next change, want 2", n)
	}
}

// TestNATSDown: with the server gone Publish returns an error (the caller
// keeps the change); after the server is back on the same port and store,
// the same change is published once.
func TestNATSDown(t *testing.T) {
	b := startBus(t)
	out, cfg := b.output(t)
	defer out.Close()
	ctx := context.Background()
	c := outputstest.Change("contoso.example", "4ae1f0d6-0000-4000-8000-000000000001", 1)
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
	if err := out.Publish(ctx, c); err == nil {
		t.Fatal("published with NATS down")
	}
	b.start()
	testpoll.Until(t, "the client to reconnect", b.nc.IsConnected)
	var err error
	testpoll.Until(t, "a publish after the reconnect", func() bool { err = out.Publish(ctx, c); return err == nil })
	if msgs := b.read(t, cfg.Stream); len(msgs) != 1 || msgs[0].change.ID != c.ID {
		t.Errorf("stream after reconnect: %d messages", len(msgs))
	}
}

// TestLimits: the stream and the bucket are created with the configured
// bounds.
func TestLimits(t *testing.T) {
	b := startBus(t)
	ctx := context.Background()
	cfg := Config{Name: "bus", MaxAge: 2 * time.Hour, MaxBytes: 8 << 20, BucketMaxBytes: 4 << 20, BucketMaxAge: time.Hour}
	out, err := New(ctx, b.js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	s, _ := b.js.Stream(ctx, DefaultStream)
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sc := info.Config
	if sc.MaxAge != 2*time.Hour || sc.MaxBytes != 8<<20 || sc.Duplicates != 2*time.Minute || sc.Discard != jetstream.DiscardOld || sc.Subjects[0] != "presence.teams.>" {
		t.Errorf("stream config %+v", sc)
	}
	kv, err := b.js.KeyValue(ctx, DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != time.Hour || st.History() != 1 {
		t.Errorf("bucket ttl %s history %d", st.TTL(), st.History())
	}
	ks, err := b.js.Stream(ctx, "KV_"+DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if ki, err := ks.Info(ctx); err != nil || ki.Config.MaxBytes != 4<<20 {
		t.Errorf("bucket max bytes: %v", err)
	}
}

func bad(js jetstream.JetStream, want string, cfg Config) outputstest.BadConfig {
	return outputstest.BadConfig{Name: want, Want: want, Build: func() (outputs.Output, error) {
		out, err := New(context.Background(), js, cfg)
		if err != nil {
			return nil, err
		}
		return out, nil
	}}
}
