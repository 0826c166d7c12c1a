package watch

import (
	"context"
	"slices"
	"strings"

	"github.com/presence-bridge/presence-bridge/bridge/identity"
	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/internal/guid"
)

// list reads who watch.users names: the tenant's members (`all`), a
// group's (`group:<id>`), or the directory's entries, resolved. A list
// that fails keeps the previous one.
func (w *Watcher) list(ctx context.Context) {
	var users []graphclient.User
	var err error
	group, isGroup := w.opts.Watch.Group()
	switch {
	case w.opts.Watch.Users == "all":
		users, err = w.opts.Graph.ListUsers(ctx)
	case isGroup:
		users, err = w.opts.Graph.ListGroupMembers(ctx, group)
	default:
		users = w.directory(ctx)
	}
	if err != nil {
		w.log.Warn("list the watched people; keeping the last list", "users", w.opts.Watch.Users, "err", err)
		return
	}
	slices.SortFunc(users, func(a, b graphclient.User) int { return strings.Compare(strings.ToLower(a.ID), strings.ToLower(b.ID)) })
	listed := make([]string, 0, len(users))
	var upns []string
	for _, u := range users {
		id := strings.ToLower(u.ID)
		if n := len(listed); n > 0 && listed[n-1] == id {
			continue // listed twice
		}
		listed = append(listed, id)
		if u.UserPrincipalName != "" && upns == nil {
			upns = make([]string, len(listed)-1, len(users))
		}
		if upns != nil {
			upns = append(upns, u.UserPrincipalName)
		}
	}
	w.listed, w.upns, w.dirty = listed, upns, true
}

// upnOf returns the UPN of a listed person, "" when not known.
func (w *Watcher) upnOf(id string) string {
	if i, ok := slices.BinarySearch(w.listed, id); ok && i < len(w.upns) {
		return w.upns[i]
	}
	return ""
}

// directory resolves the users the configured directory names; those
// this tenant does not know are left out.
func (w *Watcher) directory(ctx context.Context) []graphclient.User {
	if w.opts.DirectoryUsers == nil || w.opts.Directory == nil {
		return nil
	}
	var users []graphclient.User
	for _, name := range w.opts.DirectoryUsers() {
		id, err := w.opts.Directory.Resolve(ctx, w.opts.Tenant, name)
		if err != nil {
			w.log.Debug("a directory entry is not watched", "user", name, "err", err)
			continue
		}
		u := graphclient.User{ID: id}
		if !identity.IsObjectID(name) && strings.Contains(name, "@") {
			u.UserPrincipalName = strings.ToLower(name)
		}
		users = append(users, u)
	}
	return users
}

// setPeople works out who is read now, and forgets the last seen
// presence of whoever left the watch. Everyone the bridge holds a session
// for is read as well (writer.ObserveAggregate), watched or not; with the
// watch off only they are. People who did not change keep their slices,
// so a cycle under way and the next share them.
func (w *Watcher) setPeople() {
	var p people
	if w.opts.Watch.Enabled {
		p.listed = w.listed // sorted, each once; never changed in place
	}
	// Counted first, so that each part is made once at its size: people
	// are worked out again at every look at the clock while they join.
	var nGUIDs, nOther int
	w.others(p.listed, func(guid.GUID) { nGUIDs++ }, func(string) { nOther++ })
	guids, other := make([]guid.GUID, 0, nGUIDs), make([]string, 0, nOther)
	w.others(p.listed, func(g guid.GUID) { guids = append(guids, g) }, func(id string) { other = append(other, id) })
	slices.SortFunc(guids, guid.Compare)
	slices.Sort(other)
	p.guids, p.other = guids, other
	if slices.Equal(guids, w.people.guids) {
		p.guids = w.people.guids // the cycle under way may share it
	}
	if slices.Equal(other, w.people.other) {
		p.other = w.people.other
	}
	w.people = p
	for id := range w.loaded {
		if !w.watched(id) {
			w.leave(id)
		}
	}
	for _, id := range w.opts.Views.Others(w.opts.Tenant, w.watched) {
		w.leave(id)
	}
}

// others calls onGUID or other with each person read who is not in
// listed: with `users: directory` the people events named, and the
// session holders outside the watch.
func (w *Watcher) others(listed []string, onGUID func(guid.GUID), other func(string)) {
	if w.byDirectory() {
		for g := range w.named.GUIDs {
			if !listedHasGUID(listed, g) {
				onGUID(g)
			}
		}
		for id := range w.named.Other {
			if !listedHas(listed, id) {
				other(id)
			}
		}
	}
	for g, s := range w.sessions.GUIDs {
		if s.told != nil && !w.watchedGUID(g) {
			onGUID(g)
		}
	}
	for id, s := range w.sessions.Other {
		if s.told != nil && !w.watched(id) {
			other(id)
		}
	}
}

// byDirectory reports whether the watch is on over `users: directory`,
// which watches the people events named beside the directory's.
func (w *Watcher) byDirectory() bool {
	return w.opts.Watch.Enabled && w.opts.Watch.Users == "directory"
}

// watched reports whether id is in the watch (watch.users), whose
// changes are handed over.
func (w *Watcher) watched(id string) bool {
	if !w.opts.Watch.Enabled {
		return false
	}
	if listedHas(w.listed, id) {
		return true
	}
	_, named := w.named.Get(id)
	return named && w.byDirectory()
}

// watchedGUID is watched for a GUID id.
func (w *Watcher) watchedGUID(g guid.GUID) bool {
	if !w.opts.Watch.Enabled {
		return false
	}
	if listedHasGUID(w.listed, g) {
		return true
	}
	_, named := w.named.GUIDs[g]
	return named && w.byDirectory()
}
