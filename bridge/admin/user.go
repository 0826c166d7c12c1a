package admin

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/identity"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// UserView answers "why is this user busy?": the stored state, the
// session it derives, each open call and when it will be dropped, the
// Graph call under way or waiting, and the user's history.
type UserView struct {
	Tenant  string          `json:"tenant"`
	UserID  string          `json:"userId"`
	State   state.UserState `json:"state"`
	Desired *adapters.Pair  `json:"desired"`
	// OpenCalls are the calls that count, oldest first.
	OpenCalls []OpenCall `json:"openCalls"`
	// Pending is the Graph call under way (or cut short), nil when none.
	Pending *state.Told `json:"pending,omitempty"`
	// RetryAt is when a failed Graph call will be tried again, when the
	// last decision in the history was to retry.
	RetryAt *time.Time `json:"retryAt,omitempty"`
	// History is nil when the bridge keeps none; HistoryError says why it
	// could not be read.
	History      []history.Entry `json:"history"`
	HistoryError string          `json:"historyError,omitempty"`
}

// OpenCall is one call that keeps the user busy.
type OpenCall struct {
	Key     string    `json:"key"`
	Source  string    `json:"source"`
	State   string    `json:"state"`
	Updated time.Time `json:"updated"`
	// DropAt is when the call stops counting unless its source speaks
	// again (presence.max_call_duration, the source's lapse), nil when it
	// counts until it ends.
	DropAt *time.Time `json:"dropAt,omitempty"`
}

// lookupError is a failed lookup as the API answers it.
type lookupError struct {
	status        int
	code, message string
	// history is what became of the events naming an unknown user.
	history []history.Entry
}

// lookupUser builds the UserView of user (UPN, directory key or object
// id). An unknown user is 404; a directory or Graph that can not answer,
// or stages that do not run, are 503.
func lookupUser(ctx context.Context, d Deps, tenant, user string) (*UserView, *lookupError) {
	userID, err := d.Resolve(ctx, tenant, user)
	if errors.Is(err, identity.ErrUnknownUser) || errors.Is(err, ErrUnknownTenant) {
		le := &lookupError{status: http.StatusNotFound, code: "unknown_user", message: err.Error()}
		if d.History != nil && errors.Is(err, identity.ErrUnknownUser) {
			le.history, _ = d.History(ctx, tenant, adapters.NormalizeIdentity(user))
		}
		return nil, le
	}
	if err != nil {
		return nil, &lookupError{status: http.StatusServiceUnavailable, code: "lookup_unavailable", message: "the user can not be resolved now: " + err.Error()}
	}
	store, _, rules := d.Stages()
	if store == nil {
		return nil, &lookupError{status: http.StatusServiceUnavailable, code: "state_unavailable", message: "the state store is not open (NATS not connected yet)"}
	}
	st, _, err := store.Get(ctx, tenant, userID)
	if err != nil {
		return nil, &lookupError{status: http.StatusServiceUnavailable, code: "state_unavailable", message: err.Error()}
	}
	now := time.Now()
	if d.Now != nil {
		now = d.Now()
	}
	v := &UserView{Tenant: tenant, UserID: userID, State: st, Pending: st.Pending, OpenCalls: openCalls(st, rules)}
	v.Desired, _ = st.Desired(rules, now)
	if d.History != nil {
		v.History, err = userHistory(ctx, d, tenant, userID, user)
		if err != nil {
			v.HistoryError = err.Error()
		}
		v.RetryAt = retryAt(v.History, now)
	}
	return v, nil
}

// userHistory reads the user's history and, when the user was named
// otherwise, the entries of the events refused before they could be tied
// to the user's id, which are kept under the name (the apply stage's
// record), merged in time order.
func userHistory(ctx context.Context, d Deps, tenant, userID, name string) ([]history.Entry, error) {
	entries, err := d.History(ctx, tenant, userID)
	if err != nil {
		return nil, err
	}
	if name = adapters.NormalizeIdentity(name); strings.EqualFold(name, userID) {
		return entries, nil
	}
	named, err := d.History(ctx, tenant, name)
	if err != nil {
		return entries, err
	}
	n := len(entries)
	for _, e := range named {
		if e.Decision == "" && (e.Outcome == history.OutcomeRefused || e.Outcome == history.OutcomeRetry) {
			entries = append(entries, e)
		}
	}
	if len(entries) == n {
		return entries, nil
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].At.Before(entries[j].At) })
	return entries, nil
}

// openCalls lists st's calls that have not ended, with when each will be
// dropped.
func openCalls(st state.UserState, r state.Rules) []OpenCall {
	calls := []OpenCall{}
	for key, c := range st.Calls {
		if c.State == "ended" {
			continue
		}
		oc := OpenCall{Key: key, Source: c.Source, State: c.State, Updated: c.Updated}
		if r.MaxCallDuration > 0 {
			at := c.Updated.Add(r.MaxCallDuration)
			oc.DropAt = &at
		}
		if lapse := r.SourceLapse[c.Source]; lapse > 0 {
			if at := st.SourceSeen[c.Source].Add(lapse); oc.DropAt == nil || at.Before(*oc.DropAt) {
				oc.DropAt = &at
			}
		}
		calls = append(calls, oc)
	}
	sort.Slice(calls, func(i, j int) bool { return calls[i].Updated.Before(calls[j].Updated) })
	return calls
}

// retryAt is the retry time of the newest writer decision when it is a
// retry still ahead of now.
func retryAt(entries []history.Entry, now time.Time) *time.Time {
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Decision == "" {
			continue
		}
		if e.Decision == history.DecisionRetry && e.Until != nil && e.Until.After(now) {
			return e.Until
		}
		return nil
	}
	return nil
}

// ErrUnknownTenant is the error Deps.Resolve wraps for a tenant that is
// not configured, so that the API answers 404 rather than 503.
var ErrUnknownTenant = errors.New("unknown tenant")
