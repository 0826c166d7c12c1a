package sipdialog

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// doc builds a dialog-info document: full or partial, a version, and
// dialogs as "id=state".
func doc(t *testing.T, state string, version int, dialogs ...string) *DialogInfo {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="%d" state="%s" entity="sip:1001@pbx.test">`, version, state)
	for _, d := range dialogs {
		id, st, _ := strings.Cut(d, "=")
		fmt.Fprintf(&b, `<dialog id="%s" direction="recipient"><state>%s</state></dialog>`, id, st)
	}
	b.WriteString(`</dialog-info>`)
	info, err := ParseDialogInfo([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestTracker applies sequences of documents and checks the call changes
// each step makes.
func TestTracker(t *testing.T) {
	type step struct {
		restart bool
		doc     *DialogInfo
		want    []string // "id=state"
		stale   bool
		gap     bool
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"a call rings, is answered and ends", []step{
			{doc: doc(t, "full", 0)},
			{doc: doc(t, "full", 1, "c1=trying"), want: []string{"c1=ringing"}},
			{doc: doc(t, "full", 2, "c1=proceeding")},
			{doc: doc(t, "full", 3, "c1=early")},
			{doc: doc(t, "full", 4, "c1=confirmed"), want: []string{"c1=active"}},
			{doc: doc(t, "full", 5, "c1=terminated"), want: []string{"c1=ended"}},
		}},
		{"the bridge's own Teams dialogs are ignored", []step{
			{doc: doc(t, "full", 1, "teams-abc=confirmed"), want: nil},
			{doc: doc(t, "full", 2, "teams-abc=confirmed", "c1=early"), want: []string{"c1=ringing"}},
			{doc: doc(t, "partial", 3, "teams-abc=terminated", "c1=confirmed"), want: []string{"c1=active"}},
			{doc: doc(t, "full", 4, "teams-def=confirmed"), want: []string{"c1=ended"}},
		}},
		{"an older or repeated version changes nothing", []step{
			{doc: doc(t, "full", 5, "c1=confirmed"), want: []string{"c1=active"}},
			{doc: doc(t, "full", 4, "c1=early"), stale: true},
			{doc: doc(t, "full", 5), stale: true},
			{doc: doc(t, "full", 6), want: []string{"c1=ended"}},
		}},
		{"several dialogs of one entity", []step{
			{doc: doc(t, "full", 1, "c1=confirmed", "c2=early"), want: []string{"c1=active", "c2=ringing"}},
			{doc: doc(t, "partial", 2, "c2=terminated"), want: []string{"c2=ended"}},
			{doc: doc(t, "full", 3, "c1=confirmed")},
		}},
		{"a full state ends the dialogs it leaves out", []step{
			{doc: doc(t, "full", 1, "b=early", "a=confirmed"), want: []string{"b=ringing", "a=active"}},
			{doc: doc(t, "full", 2, "c=early"), want: []string{"c=ringing", "a=ended", "b=ended"}},
		}},
		{"a partial state changes only what it lists", []step{
			{doc: doc(t, "full", 1, "a=confirmed"), want: []string{"a=active"}},
			{doc: doc(t, "partial", 2, "b=early"), want: []string{"b=ringing"}},
			{doc: doc(t, "partial", 3, "x=terminated")},
		}},
		{"a skipped partial version is reported", []step{
			{doc: doc(t, "full", 1)},
			{doc: doc(t, "partial", 3, "a=early"), want: []string{"a=ringing"}, gap: true},
			{doc: doc(t, "full", 5), want: []string{"a=ended"}},
		}},
		{"a new subscription starts its versions over and keeps calls until its full state", []step{
			{doc: doc(t, "full", 7, "a=confirmed"), want: []string{"a=active"}},
			{restart: true, doc: doc(t, "full", 0, "a=confirmed")},
			{restart: true, doc: doc(t, "full", 0), want: []string{"a=ended"}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tr tracker
			for i, s := range c.steps {
				if s.restart {
					tr.restart()
				}
				r := tr.apply(s.doc)
				var got []string
				for _, ch := range r.changes {
					got = append(got, ch.DialogID+"="+ch.State)
				}
				if !reflect.DeepEqual(got, s.want) || r.stale != s.stale || r.gap != s.gap {
					t.Errorf("step %d: got %v stale=%v gap=%v, want %v stale=%v gap=%v", i, got, r.stale, r.gap, s.want, s.stale, s.gap)
				}
			}
		})
	}
}

// TestTrackerSnapshot: a subscription's snapshot, its first full document
// or an empty body (nil here) while active, ends the calls it does not
// list and is reported as the snapshot; later documents and empty bodies
// are not snapshots, and an empty body after a document changes nothing.
func TestTrackerSnapshot(t *testing.T) {
	type step struct {
		restart  bool
		doc      *DialogInfo // nil: an empty body
		want     []string    // "id=state"
		snapshot bool
	}
	known := doc(t, "full", 3, "a=confirmed", "b=early")
	cases := []struct {
		name  string
		steps []step
	}{
		{"the PBX restarted and knows no dialog: an empty body ends them all", []step{
			{doc: known, want: []string{"a=active", "b=ringing"}},
			{restart: true, doc: nil, want: []string{"a=ended", "b=ended"}, snapshot: true},
			{doc: nil},
			{doc: doc(t, "full", 0, "c=early"), want: []string{"c=ringing"}},
		}},
		{"a new subscription's full document ends what it leaves out", []step{
			{doc: known, want: []string{"a=active", "b=ringing"}},
			{restart: true, doc: doc(t, "full", 0, "b=confirmed"), want: []string{"b=active", "a=ended"}, snapshot: true},
			{doc: doc(t, "full", 1, "b=confirmed")},
		}},
		{"a taken-over entity (nothing known) is a snapshot too", []step{
			{restart: true, doc: doc(t, "full", 9, "x=terminated"), snapshot: true},
		}},
		{"a partial first document is no snapshot; the next full one is", []step{
			{doc: known, want: []string{"a=active", "b=ringing"}},
			{restart: true, doc: doc(t, "partial", 0, "c=early"), want: []string{"c=ringing"}},
			{doc: nil},
			{doc: doc(t, "full", 1, "c=early"), want: []string{"a=ended", "b=ended"}, snapshot: true},
		}},
		{"an empty body after the snapshot changes nothing", []step{
			{restart: true, doc: known, want: []string{"a=active", "b=ringing"}, snapshot: true},
			{doc: nil},
			{doc: doc(t, "full", 4, "a=confirmed"), want: []string{"b=ended"}},
		}},
		{"a tracker never restarted has no snapshot", []step{
			{doc: nil},
			{doc: known, want: []string{"a=active", "b=ringing"}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tr tracker
			for i, s := range c.steps {
				if s.restart {
					tr.restart()
				}
				var r applied
				if s.doc == nil {
					r = tr.empty()
				} else {
					r = tr.apply(s.doc)
				}
				var got []string
				for _, ch := range r.changes {
					got = append(got, ch.DialogID+"="+ch.State)
				}
				if strings.Join(got, " ") != strings.Join(s.want, " ") || r.snapshot != s.snapshot {
					t.Errorf("step %d: got %v snapshot=%v, want %v snapshot=%v", i, got, r.snapshot, s.want, s.snapshot)
				}
			}
		})
	}
}

// TestTrackerBounds shows that no more than MaxDialogs dialogs are kept
// open for one entity, however many documents announce.
func TestTrackerBounds(t *testing.T) {
	var tr tracker
	for v := range 3 {
		var dialogs []string
		for i := range MaxDialogs {
			dialogs = append(dialogs, fmt.Sprintf("v%d-%d=early", v, i))
		}
		r := tr.apply(doc(t, "partial", v+1, dialogs...))
		if v > 0 && r.dropped != MaxDialogs {
			t.Errorf("document %d: dropped %d, want %d", v, r.dropped, MaxDialogs)
		}
	}
	if len(tr.open) != MaxDialogs {
		t.Errorf("%d dialogs open, want %d", len(tr.open), MaxDialogs)
	}
	ended := tr.lapse()
	if len(ended) != MaxDialogs || len(tr.open) != 0 {
		t.Errorf("lapse ended %d, left %d", len(ended), len(tr.open))
	}
	for range 3 {
		tr.apply(doc(t, "full", 10, "x=early"))
		tr.lapse()
	}
	if len(tr.lapsed) > MaxDialogs {
		t.Errorf("%d lapsed dialogs remembered", len(tr.lapsed))
	}
}

// TestTrackerLapse shows that a call ended by a lapse and seen again
// afterwards gets events of a new round, and an ordinary end then closes
// that round.
func TestTrackerLapse(t *testing.T) {
	var tr tracker
	tr.apply(doc(t, "full", 1, "a=confirmed", "b=early"))
	if got := tr.lapse(); !reflect.DeepEqual(got, []change{{"a", "ended", 0}, {"b", "ended", 0}}) {
		t.Fatalf("lapse %v", got)
	}
	tr.restart()
	r := tr.apply(doc(t, "full", 0, "a=confirmed"))
	if !reflect.DeepEqual(r.changes, []change{{"a", "active", 1}}) {
		t.Fatalf("seen again: %v", r.changes)
	}
	r = tr.apply(doc(t, "partial", 1, "a=terminated"))
	if !reflect.DeepEqual(r.changes, []change{{"a", "ended", 1}}) {
		t.Fatalf("ended: %v", r.changes)
	}
	r = tr.apply(doc(t, "partial", 2, "b=early"))
	if !reflect.DeepEqual(r.changes, []change{{"b", "ringing", 1}}) {
		t.Fatalf("b seen again: %v", r.changes)
	}
	r = tr.apply(doc(t, "partial", 3, "a=early"))
	if !reflect.DeepEqual(r.changes, []change{{"a", "ringing", 0}}) {
		t.Fatalf("a's round was not forgotten: %v", r.changes)
	}
}
