package sip_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/outputs"
	"github.com/presence-bridge/presence-bridge/outputs/outputstest"
	sipout "github.com/presence-bridge/presence-bridge/outputs/sip"
	"github.com/presence-bridge/presence-bridge/outputs/sip/siptest"
)

// suitePeople maps every person the conformance suite names to an
// extension.
func suitePeople() map[string]string {
	people := map[string]string{}
	ids := []string{"00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-0000000000a1", "00000000-0000-4000-8000-0000000000b2",
		"00000000-0000-4000-8000-0000000000c3", "late", "u"}
	for i := range 8 {
		ids = append(ids, fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
	}
	for i, id := range ids {
		people[id] = fmt.Sprintf("%d", 2000+i)
	}
	return people
}

func TestConformance(t *testing.T) {
	outputstest.Run(t, outputstest.Suite{
		Package: "github.com/presence-bridge/presence-bridge/outputs/sip",
		New: func(t *testing.T) (outputs.Output, func(t *testing.T) []outputs.Change) {
			r := siptest.NewReceiver(t)
			out, err := sipout.New(sipout.Config{Name: "phones", Server: r.Addr, Transport: "tcp", Domain: "pbx.test", Extensions: suitePeople()}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return out, r.Changes
		},
		BadConfigs: []outputstest.BadConfig{
			{Name: "no server", Build: func() (outputs.Output, error) { return sipout.New(sipout.Config{Name: "x"}, nil) }, Want: "server"},
			{Name: "tls", Build: func() (outputs.Output, error) {
				return sipout.New(sipout.Config{Name: "x", Server: "127.0.0.1:5060", Transport: "tls"}, nil)
			}, Want: "transport"},
			{Name: "short expiry", Build: func() (outputs.Output, error) {
				return sipout.New(sipout.Config{Name: "x", Server: "127.0.0.1:5060", Expires: time.Second}, nil)
			}, Want: "expires"},
			{Name: "bad person", Build: func() (outputs.Output, error) {
				return sipout.New(sipout.Config{Name: "x", Server: "127.0.0.1:5060", Extensions: map[string]string{"a@b": "sip:"}}, nil)
			}, Want: "extensions.a@b"},
		},
	})
}
