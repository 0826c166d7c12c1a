package lookup

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/identity"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs"
)

const (
	contoso  = "contoso.example"
	fabrikam = "fabrikam.example"
	aliceID  = "a11ce000-0000-4000-8000-000000000001"
	bobID    = "b0b00000-0000-4000-8000-000000000002"
)

var seen = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

// view is a view of id in tenant known as upn, at sequence seq.
func view(tenant, id, upn, seq, availability string) outputs.View {
	return outputs.View{
		User: upn, ID: id, Tenant: tenant,
		Availability: availability, Activity: availability,
		Origin: outputs.OriginTeams, Since: seen, SeenAt: seen, SequenceNumber: seq,
	}
}

// directory is a resolver over a fixed map, counting its calls.
type directory struct {
	entries map[string][2]string // key -> tenant, user
	err     error
	calls   int
}

func (d *directory) resolve(_ context.Context, tenant, key string) (string, string, error) {
	d.calls++
	if d.err != nil {
		return "", "", d.err
	}
	e, ok := d.entries[key]
	if !ok {
		return "", "", fmt.Errorf("%w: %s", identity.ErrUnknownUser, key)
	}
	return e[0], e[1], nil
}

// TestGet: a person is found by UPN in any case, by object id in any
// case, and by a directory key through the resolver (which is not asked
// for UPNs or object ids); a tenant narrows the search; a name watched in
// two tenants needs one; nobody else is found.
func TestGet(t *testing.T) {
	dir := &directory{entries: map[string][2]string{
		"ext:1001": {contoso, aliceID},
		"ext:1002": {"", "BOB@contoso.example"},
		"ext:9999": {contoso, "c0000000-0000-4000-8000-00000000000c"},
	}}
	vs := NewViews(Options{Resolve: dir.resolve})
	vs.Set(view(contoso, aliceID, "alice@contoso.example", "1", "Available"))
	vs.Set(view(contoso, bobID, "bob@contoso.example", "1", "Busy"))
	vs.Set(view(fabrikam, aliceID, aliceID, "1", "Away")) // same id, no UPN known

	for _, c := range []struct {
		name, tenant, key string
		wantTenant, want  string // want: availability
		err               error
		resolves          bool
	}{
		{"upn", "", "alice@contoso.example", contoso, "Available", nil, false},
		{"upn in capitals", "", " Alice@CONTOSO.example ", contoso, "Available", nil, false},
		{"object id", contoso, aliceID, contoso, "Available", nil, false},
		{"object id in capitals", fabrikam, "A11CE000-0000-4000-8000-000000000001", fabrikam, "Away", nil, false},
		{"object id in two tenants", "", aliceID, "", "", ErrAmbiguous, false},
		{"upn of another tenant", fabrikam, "alice@contoso.example", "", "", ErrNotWatched, false},
		{"directory key to an object id", "", "ext:1001", contoso, "Available", nil, true},
		{"directory key to a upn", "", "ext:1002", contoso, "Busy", nil, true},
		{"directory key of someone not watched", "", "ext:9999", "", "", ErrNotWatched, true},
		{"unknown directory key", "", "ext:4711", "", "", ErrNotWatched, true},
		{"unknown upn", "", "carol@contoso.example", "", "", ErrNotWatched, false},
		{"unknown object id", "", "c0000000-0000-4000-8000-00000000000c", "", "", ErrNotWatched, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls := dir.calls
			v, etag, err := vs.Get(t.Context(), c.tenant, c.key)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("Get(%q, %q) = %v, want %v", c.tenant, c.key, err, c.err)
				}
			} else if err != nil || v.Tenant != c.wantTenant || v.Availability != c.want || etag != ETag(v) {
				t.Fatalf("Get(%q, %q) = %+v, %s, %v; want %s in %s", c.tenant, c.key, v, etag, err, c.want, c.wantTenant)
			}
			if resolved := dir.calls > calls; resolved != c.resolves {
				t.Fatalf("resolver asked: %v, want %v", resolved, c.resolves)
			}
		})
	}

	dir.err = errors.New("directory reloading")
	if _, _, err := vs.Get(t.Context(), "", "ext:1001"); err == nil || errors.Is(err, ErrNotWatched) {
		t.Fatalf("a failing resolver gives %v, want its error", err)
	}
}

// TestSetRenames: a person first seen by object id and later by UPN is
// found by the UPN, and by an old UPN no more; Delete forgets them.
func TestSetRenames(t *testing.T) {
	vs := NewViews(Options{})
	vs.Set(view(contoso, aliceID, aliceID, "1", "Available"))
	vs.Set(view(contoso, aliceID, "alice@contoso.example", "1", "Available"))
	if _, _, err := vs.Get(t.Context(), "", "alice@contoso.example"); err != nil {
		t.Fatal(err)
	}
	vs.Set(view(contoso, aliceID, "alice.smith@contoso.example", "1", "Available"))
	if _, _, err := vs.Get(t.Context(), "", "alice@contoso.example"); !errors.Is(err, ErrNotWatched) {
		t.Fatalf("the old UPN still finds the person: %v", err)
	}
	if _, _, err := vs.Get(t.Context(), "", aliceID); err != nil {
		t.Fatal(err)
	}
	vs.Delete(contoso, aliceID)
	for _, key := range []string{aliceID, "alice.smith@contoso.example"} {
		if _, _, err := vs.Get(t.Context(), "", key); !errors.Is(err, ErrNotWatched) {
			t.Fatalf("after Delete %s gives %v", key, err)
		}
	}
	if vs.Len() != 0 || len(vs.names) != 0 || len(vs.more) != 0 || len(vs.tenants) != 0 || len(vs.sorted) != 0 {
		t.Fatalf("after Delete the store holds %d people, %d names, %d sorted", vs.Len(), len(vs.names), len(vs.sorted))
	}
}

// TestETag: the ETag changes when the presence does (sequenceNumber or
// pair) and not when the watcher only sees it again; it is strong, and the
// same in another store (a restart).
func TestETag(t *testing.T) {
	base := view(contoso, aliceID, "alice@contoso.example", "100", "Available")
	for _, c := range []struct {
		name    string
		change  func(v *outputs.View)
		changed bool
	}{
		{"seen again", func(v *outputs.View) { v.SeenAt = v.SeenAt.Add(time.Minute) }, false},
		{"since", func(v *outputs.View) { v.Since = v.Since.Add(time.Minute) }, false},
		{"object id case", func(v *outputs.View) { v.ID = "A11CE000-0000-4000-8000-000000000001" }, false},
		{"sequenceNumber", func(v *outputs.View) { v.SequenceNumber = "101" }, true},
		{"availability", func(v *outputs.View) { v.Availability = "Busy" }, true},
		{"activity", func(v *outputs.View) { v.Activity = "InACall" }, true},
		{"tenant", func(v *outputs.View) { v.Tenant = fabrikam }, true},
		{"person", func(v *outputs.View) { v.ID = bobID }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			vs := NewViews(Options{})
			vs.Set(base)
			_, before, _ := vs.Get(t.Context(), base.Tenant, aliceID)
			v := base
			c.change(&v)
			vs.Set(v)
			_, after, err := vs.Get(t.Context(), v.Tenant, v.ID)
			if err != nil {
				t.Fatal(err)
			}
			if (before != after) != c.changed {
				t.Fatalf("ETag %s then %s; changed: %v, want %v", before, after, before != after, c.changed)
			}
			if len(after) < 3 || after[0] != '"' || after[len(after)-1] != '"' {
				t.Fatalf("ETag %s is not a strong entity tag", after)
			}
			if restarted := NewViews(Options{}); true {
				restarted.Set(v)
				if _, again, _ := restarted.Get(t.Context(), v.Tenant, v.ID); again != after {
					t.Fatalf("another store tags the same view %s, not %s", again, after)
				}
			}
		})
	}
}

// waitResult is what a Wait returned.
type waitResult struct {
	view outputs.View
	etag string
	err  error
}

// startWait calls Wait in a goroutine and returns its result's channel
// once the call waits.
func startWait(t *testing.T, vs *Views, ctx context.Context, key, etag string) <-chan waitResult {
	t.Helper()
	waiting := vs.Waiting()
	done := make(chan waitResult, 1)
	go func() {
		v, e, err := vs.Wait(ctx, "", key, etag)
		done <- waitResult{v, e, err}
	}()
	testpoll.Until(t, "the long-poll to wait", func() bool { return vs.Waiting() > waiting })
	return done
}

// TestWait: a waiter wakes on a change of the ETag (not on a sighting),
// on its context's end (with the unchanged view), on Close and when the
// person leaves the watch; a wait for an ETag that is not current returns
// at once.
func TestWait(t *testing.T) {
	v1 := view(contoso, aliceID, "alice@contoso.example", "1", "Available")
	v2 := view(contoso, aliceID, "alice@contoso.example", "2", "Busy")
	for _, c := range []struct {
		name     string
		release  func(vs *Views, cancel context.CancelFunc)
		want     string // availability, or "" for an error
		wantErr  error
		wantSame bool // the ETag waited on comes back
	}{
		{"change", func(vs *Views, _ context.CancelFunc) {
			seenAgain := v1
			seenAgain.SeenAt = seenAgain.SeenAt.Add(time.Second)
			vs.Set(seenAgain) // a sighting, which must not end the wait
			vs.Set(v2)
		}, "Busy", nil, false},
		{"context ends", func(_ *Views, cancel context.CancelFunc) { cancel() }, "Available", nil, true},
		{"close", func(vs *Views, _ context.CancelFunc) { vs.Close() }, "", ErrClosed, false},
		{"leaves the watch", func(vs *Views, _ context.CancelFunc) { vs.Delete(contoso, aliceID) }, "", ErrNotWatched, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			vs := NewViews(Options{})
			vs.Set(v1)
			etag := ETag(v1)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			// Two waiters of one person share one channel.
			a := startWait(t, vs, ctx, "alice@contoso.example", etag)
			b := startWait(t, vs, ctx, aliceID, etag)
			c.release(vs, cancel)
			for _, done := range []<-chan waitResult{a, b} {
				r := <-done
				if c.wantErr != nil {
					if !errors.Is(r.err, c.wantErr) {
						t.Fatalf("Wait = %v, want %v", r.err, c.wantErr)
					}
					continue
				}
				if r.err != nil || r.view.Availability != c.want || (r.etag == etag) != c.wantSame {
					t.Fatalf("Wait = %+v, %s, %v; want %s, same ETag %v", r.view, r.etag, r.err, c.want, c.wantSame)
				}
			}
			if n := vs.Waiting(); n != 0 {
				t.Fatalf("%d still waiting", n)
			}
		})
	}

	vs := NewViews(Options{})
	vs.Set(v2)
	if v, _, err := vs.Wait(t.Context(), "", aliceID, ETag(v1)); err != nil || v.Availability != "Busy" {
		t.Fatalf("a wait for an old ETag = %+v, %v; want the current view at once", v, err)
	}
	vs.Close()
	if _, _, err := vs.Wait(t.Context(), "", aliceID, "other"); !errors.Is(err, ErrClosed) {
		t.Fatalf("a wait after Close = %v, want ErrClosed", err)
	}
}

// TestWaitersBounded: beyond MaxWaiters a wait is refused at once; a
// released place can be taken again.
func TestWaitersBounded(t *testing.T) {
	vs := NewViews(Options{MaxWaiters: 3})
	v := view(contoso, aliceID, "alice@contoso.example", "1", "Available")
	vs.Set(v)
	ctx, cancel := context.WithCancel(t.Context())
	var waits []<-chan waitResult
	for range 3 {
		waits = append(waits, startWait(t, vs, ctx, aliceID, ETag(v)))
	}
	if _, _, err := vs.Wait(t.Context(), "", aliceID, ETag(v)); !errors.Is(err, ErrTooManyWaiters) {
		t.Fatalf("the fourth wait = %v, want ErrTooManyWaiters", err)
	}
	cancel()
	for _, w := range waits {
		<-w
	}
	late, stop := context.WithCancel(t.Context())
	w := startWait(t, vs, late, aliceID, ETag(v))
	stop()
	if r := <-w; r.err != nil {
		t.Fatalf("a wait after the others left = %v", r.err)
	}
}

// TestList: pages in (tenant, id) order, a tenant filter, a cursor to the
// next page and none after the last, and a malformed cursor refused.
func TestList(t *testing.T) {
	vs := NewViews(Options{})
	var want []string
	for _, tenant := range []string{fabrikam, contoso} {
		for i := 5; i > 0; i-- {
			id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			vs.Set(view(tenant, id, id, "1", "Available"))
		}
	}
	for _, tenant := range []string{contoso, fabrikam} {
		for i := 1; i <= 5; i++ {
			want = append(want, fmt.Sprintf("%s/00000000-0000-4000-8000-%012d", tenant, i))
		}
	}
	for _, c := range []struct {
		tenant string
		limit  int
		want   []string
	}{
		{"", 3, want},
		{"", 100, want},
		{"", 10, want},
		{fabrikam, 2, want[5:]},
		{contoso, 5, want[:5]},
		{"northwind.example", 10, nil},
	} {
		t.Run(fmt.Sprintf("%s/%d", c.tenant, c.limit), func(t *testing.T) {
			var got []string
			cursor, pages := "", 0
			for {
				views, next, err := vs.List(c.tenant, cursor, c.limit)
				if err != nil {
					t.Fatal(err)
				}
				if len(views) > c.limit {
					t.Fatalf("a page of %d views, limit %d", len(views), c.limit)
				}
				for _, v := range views {
					got = append(got, v.Tenant+"/"+v.ID)
				}
				pages++
				if next == "" {
					break
				}
				cursor = next
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("listed %v, want %v", got, c.want)
			}
			if wantPages := max(1, (len(c.want)+c.limit-1)/c.limit); pages != wantPages {
				t.Fatalf("%d pages, want %d", pages, wantPages)
			}
		})
	}
	for _, cursor := range []string{"not base64!", "bm8gc2VwYXJhdG9y", string(make([]byte, maxCursor+1))} {
		if _, _, err := vs.List("", cursor, 10); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("cursor %.20q: %v, want ErrBadCursor", cursor, err)
		}
	}
}

// TestRecordsAreCompact: people in the same pair share one copy of it,
// the table of shared pairs stays bounded whatever the watcher hands
// over, and a view read back is the view set.
func TestRecordsAreCompact(t *testing.T) {
	vs := NewViews(Options{})
	alice, bob := view(contoso, aliceID, "alice@contoso.example", "1", "Busy"), view(contoso, bobID, "bob@contoso.example", "1", "Busy")
	bob.Origin, bob.Sources = outputs.OriginBridge, []string{"pbx"}
	vs.Set(alice)
	vs.Set(bob)
	a, b := vs.entry(person{contoso, aliceID}), vs.entry(person{contoso, bobID})
	if a.pair != b.pair {
		t.Fatalf("alice's and bob's pairs are %p and %p, want one shared Busy/Busy", a.pair, b.pair)
	}
	for _, want := range []outputs.View{alice, bob} {
		got, etag, err := vs.Get(context.Background(), contoso, want.ID)
		if err != nil || !reflect.DeepEqual(got, want) || etag != ETag(want) {
			t.Fatalf("Get %s = %+v, %s, %v; want %+v, %s", want.ID, got, etag, err, want, ETag(want))
		}
	}
	for i := range 3 * maxPairs {
		vs.Set(view(contoso, aliceID, "alice@contoso.example", fmt.Sprint(i+2), fmt.Sprintf("Odd%d", i)))
	}
	if n := len(vs.pairs); n != maxPairs {
		t.Fatalf("%d shared pairs, want at most %d", n, maxPairs)
	}
}
