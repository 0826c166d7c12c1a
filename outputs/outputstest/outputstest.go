// Package outputstest is the conformance suite every output type runs,
// as adapters/adaptertest is for sources: a change is delivered with its
// fields, one person's changes keep their order, a change offered twice
// is delivered once, a malformed change and a bad configuration are clear
// errors, and Close waits, releases the output's goroutines and makes
// Publish fail.
package outputstest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs"
)

// Now is the time the suite's changes are dated at.
var Now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// Suite describes one output type to the conformance suite.
type Suite struct {
	// New builds a fresh output and returns it with a function that
	// returns, in order, every change its receivers have got so far
	// (decoded as a receiver decodes them, ID included).
	New func(t *testing.T) (outputs.Output, func(t *testing.T) []outputs.Change)
	// Package is the output's import path; after Close no goroutine may
	// run its code.
	Package string
	// BadConfigs are configurations New must refuse, with the text the
	// error must contain (the key's name).
	BadConfigs []BadConfig
}

// BadConfig is a configuration the output type must refuse.
type BadConfig struct {
	Name  string
	Build func() (outputs.Output, error)
	Want  string
}

// Change returns the n-th change (n from 1) of a person of tenant: Busy
// for odd n, Available for even, with sequence number n.
func Change(tenant, id string, n int) outputs.Change {
	pairs := []outputs.Pair{{Availability: "Available", Activity: "Available"}, {Availability: "Busy", Activity: "InACall"}}
	seq := fmt.Sprintf("%08d", n)
	at := Now.Add(time.Duration(n) * time.Second)
	c := outputs.Change{
		ID: outputs.ChangeID(tenant, id, seq),
		View: outputs.View{
			User: "user-" + id + "@" + tenant, ID: id, Tenant: tenant,
			Availability: pairs[n%2].Availability, Activity: pairs[n%2].Activity,
			Origin: outputs.OriginTeams, Since: at, SeenAt: at, SequenceNumber: seq,
		},
	}
	if n > 1 {
		c.Previous = &pairs[(n-1)%2]
	}
	return c
}

// Run runs the suite.
func Run(t *testing.T, s Suite) {
	t.Helper()
	ctx := context.Background()
	t.Run("publishes a change", func(t *testing.T) {
		out, got := s.New(t)
		defer out.Close()
		c := Change("contoso.example", "00000000-0000-4000-8000-00000000000a", 1)
		c.Origin, c.Sources = outputs.OriginBridge, []string{"pbx"}
		if err := out.Publish(ctx, c); err != nil {
			t.Fatal(err)
		}
		list := wait(t, got, 1)
		if !Equal(list[0], c) {
			t.Errorf("delivered\n %+v\nwant\n %+v", list[0], c)
		}
	})
	t.Run("keeps one person's changes in order", func(t *testing.T) {
		out, got := s.New(t)
		defer out.Close()
		const n = 6
		people := []string{"00000000-0000-4000-8000-0000000000a1", "00000000-0000-4000-8000-0000000000b2"}
		var wg sync.WaitGroup
		errs := make(chan error, len(people))
		for _, id := range people {
			wg.Go(func() {
				for i := 1; i <= n; i++ {
					if err := out.Publish(ctx, Change("contoso.example", id, i)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		list := wait(t, got, n*len(people))
		for _, id := range people {
			var seqs []string
			for _, c := range list {
				if c.View.ID == id {
					seqs = append(seqs, c.SequenceNumber)
				}
			}
			var want []string
			for i := 1; i <= n; i++ {
				want = append(want, Change("", "", i).SequenceNumber)
			}
			if !reflect.DeepEqual(seqs, want) {
				t.Errorf("%s: delivered %v, want %v", id, seqs, want)
			}
		}
	})
	t.Run("same change twice is delivered once", func(t *testing.T) {
		out, got := s.New(t)
		defer out.Close()
		id := "00000000-0000-4000-8000-0000000000c3"
		first, next := Change("contoso.example", id, 1), Change("contoso.example", id, 2)
		for _, c := range []outputs.Change{first, first, next, next} {
			if err := out.Publish(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		// The person's later change is delivered after any copy of the
		// first, so once it is in, every copy would be.
		list := wait(t, got, 2)
		if len(list) != 2 || list[0].ID != first.ID || list[1].ID != next.ID {
			t.Errorf("delivered %v, want %s then %s once each", ids(list), first.ID, next.ID)
		}
	})
	t.Run("malformed change is an error", func(t *testing.T) {
		out, got := s.New(t)
		defer out.Close()
		for _, c := range []outputs.Change{
			{},
			func() outputs.Change { c := Change("t", "u", 1); c.ID = ""; return c }(),
			func() outputs.Change { c := Change("t", "u", 1); c.Origin = "pbx"; return c }(),
			func() outputs.Change { c := Change("t", "u", 1); c.User = "\xff"; return c }(),
			func() outputs.Change {
				c := Change("t", "u", 1)
				c.Activity = strings.Repeat("a", outputs.MaxField+1)
				return c
			}(),
		} {
			if err := out.Publish(ctx, c); err == nil {
				t.Errorf("published a malformed change %+v", c)
			}
		}
		marker := Change("t", "u", 2)
		if err := out.Publish(ctx, marker); err != nil {
			t.Fatal(err)
		}
		if list := wait(t, got, 1); len(list) != 1 || list[0].ID != marker.ID {
			t.Errorf("delivered %v, want only %s", ids(list), marker.ID)
		}
	})
	t.Run("bad configuration is a clear error", func(t *testing.T) {
		if len(s.BadConfigs) == 0 {
			t.Fatal("the suite needs at least one bad configuration")
		}
		for _, b := range s.BadConfigs {
			out, err := b.Build()
			if err == nil {
				out.Close()
				t.Errorf("%s: built", b.Name)
				continue
			}
			if !strings.Contains(err.Error(), b.Want) {
				t.Errorf("%s: error %q does not name %q", b.Name, err, b.Want)
			}
		}
	})
	t.Run("close waits, releases, and publish after close errors", func(t *testing.T) {
		out, got := s.New(t)
		// Publishes racing Close either deliver or fail with ErrClosed.
		var wg sync.WaitGroup
		var mu sync.Mutex
		delivered := 0
		for i := range 8 {
			wg.Go(func() {
				err := out.Publish(ctx, Change("contoso.example", fmt.Sprintf("00000000-0000-4000-8000-%012d", i), 1))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					delivered++
				case !errors.Is(err, outputs.ErrClosed):
					t.Errorf("publish racing close: %v", err)
				}
			})
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if err := out.Publish(ctx, Change("contoso.example", "late", 1)); !errors.Is(err, outputs.ErrClosed) {
			t.Errorf("publish after close: %v, want ErrClosed", err)
		}
		if err := out.Close(); err != nil {
			t.Errorf("second close: %v", err)
		}
		wait(t, got, delivered)
		testpoll.Until(t, "no goroutine in "+s.Package, func() bool { return !running(s.Package) })
	})
}

// wait polls got until it has n changes, and returns them; more than n is
// a failure.
func wait(t *testing.T, got func(t *testing.T) []outputs.Change, n int) []outputs.Change {
	t.Helper()
	var list []outputs.Change
	testpoll.Until(t, fmt.Sprintf("%d deliveries", n), func() bool {
		list = got(t)
		return len(list) >= n
	})
	if len(list) > n {
		t.Errorf("%d deliveries, want %d: %v", len(list), n, ids(list))
	}
	return list
}

func ids(list []outputs.Change) []string {
	out := make([]string, len(list))
	for i, c := range list {
		out[i] = c.ID
	}
	return out
}

// running reports whether a goroutine other than the suite's own runs
// code of pkg.
func running(pkg string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, pkg+".") && !strings.Contains(g, "outputstest.") && !strings.Contains(g, "testing.tRunner") {
			return true
		}
	}
	return false
}

// Equal reports whether two changes are the same, times compared as
// instants and an empty list of sources as none.
func Equal(a, b outputs.Change) bool {
	if !a.Since.Equal(b.Since) || !a.SeenAt.Equal(b.SeenAt) {
		return false
	}
	a.Since, a.SeenAt, b.Since, b.SeenAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if len(a.Sources) == 0 && len(b.Sources) == 0 {
		a.Sources, b.Sources = nil, nil
	}
	return reflect.DeepEqual(a, b)
}
