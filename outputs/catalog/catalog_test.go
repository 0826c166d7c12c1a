package catalog

import (
	"context"
	"strings"
	"testing"

	"github.com/presence-bridge/presence-bridge/internal/natstest"
	natsout "github.com/presence-bridge/presence-bridge/outputs/nats"
	"github.com/presence-bridge/presence-bridge/outputs/outputstest"
	"github.com/presence-bridge/presence-bridge/outputs/webhook"
)

// TestNew: a nats output builds from its settings on a real JetStream and
// publishes; wrong settings and unknown types are errors naming them.
func TestNew(t *testing.T) {
	js, _ := natstest.Start(t)
	ctx := context.Background()
	out, err := New(ctx, Config{Name: "bus", Type: "nats", Settings: natsout.Config{}}, Deps{JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Publish(ctx, outputstest.Change("contoso.example", "u", 1)); err != nil {
		t.Fatal(err)
	}
	out.Close()
	s, err := js.Stream(ctx, natsout.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Errorf("stream holds %v messages (%v), want 1", info, err)
	}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Name: "bus", Type: "nats", Settings: nil}, "nats output bus: settings are <nil>"},
		{Config{Name: "bus", Type: "nats", Settings: natsout.Config{Stream: "a.b"}}, "nats output bus: stream:"},
		{Config{Name: "hook", Type: "carrier-pigeon"}, `output hook: no output type "carrier-pigeon" (known: [nats sip webhook])`},
		{Config{Name: "hook", Type: "webhook", Settings: natsout.Config{}}, "webhook output hook: settings are nats.Config"},
		{Config{Name: "hook", Type: "webhook", Settings: webhook.Config{URL: "ftp://x"}}, "webhook output hook: url: must be an absolute http or https URL"},
	} {
		if _, err := New(ctx, c.cfg, Deps{JetStream: js}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
	}
}
