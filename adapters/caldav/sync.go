package caldav

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-webdav"
	webdavcaldav "github.com/emersion/go-webdav/caldav"
)

// collection is one calendar collection and the objects read from it.
type collection struct {
	url string
	// marker is the sync-token or ctag seen at the last complete sync; an
	// equal one means nothing changed.
	marker string
	// syncToken is the token to ask sync-collection for changes since.
	syncToken string
	objects   map[string]*object // by href path
}

// object is one calendar object: its etag and its events, reduced.
type object struct {
	etag  string
	comps []component
}

func newCollection(u string) *collection {
	return &collection{url: u, objects: map[string]*object{}}
}

// sync brings c up to date: one PROPFIND when nothing changed; otherwise
// the changed hrefs (by sync-collection, or by listing etags) and a
// multiget of those whose etag is new.
func (c *collection) sync(ctx context.Context, hc *http.Client, cfg Config, p person, log *slog.Logger) error {
	base, err := url.Parse(c.url)
	if err != nil {
		return err
	}
	probe, err := dav(ctx, hc, "PROPFIND", c.url, "0", probeBody)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	var ctag, token string
	for _, r := range probe.Responses {
		_, ct, st, _ := r.found()
		ctag, token = cmp.Or(ctag, ct), cmp.Or(token, st)
	}
	marker := cmp.Or(token, ctag)
	if marker != "" && marker == c.marker {
		return nil
	}
	changed, removed, full, newToken, err := c.changes(ctx, hc, base, token)
	if err != nil {
		return err
	}
	if full {
		for href := range c.objects {
			if _, ok := changed[href]; !ok {
				delete(c.objects, href)
			}
		}
	}
	for _, href := range removed {
		delete(c.objects, href)
	}
	var fetch []string
	for href, etag := range changed {
		if o, ok := c.objects[href]; ok && etag != "" && o.etag == etag {
			continue
		}
		if _, ok := c.objects[href]; !ok && len(c.objects)+len(fetch) >= cfg.MaxObjects {
			log.Warn("caldav objects capped", "collection", c.url, "max", cfg.MaxObjects)
			break
		}
		fetch = append(fetch, href)
	}
	slices.Sort(fetch)
	for len(fetch) > 0 {
		n := min(len(fetch), multigetBatch)
		if err := c.fetch(ctx, hc, base, fetch[:n], cfg.MaxObjectBytes, p, log); err != nil {
			return fmt.Errorf("multiget: %w", err)
		}
		fetch = fetch[n:]
	}
	c.marker, c.syncToken = marker, cmp.Or(newToken, token)
	return nil
}

// changes lists what changed: hrefs with their etags, removed hrefs, and
// whether changed is the full content of the collection.
func (c *collection) changes(ctx context.Context, hc *http.Client, base *url.URL, token string) (changed map[string]string, removed []string, full bool, newToken string, err error) {
	changed = map[string]string{}
	if token != "" && c.syncToken != "" {
		ms, err := dav(ctx, hc, "REPORT", c.url, "0", fmt.Sprintf(syncBodyFormat, escapeXML(c.syncToken)))
		var se *statusError
		switch {
		case err == nil:
			for _, r := range ms.Responses {
				href, herr := hrefPath(base, r.Href)
				if herr != nil || href == base.EscapedPath() {
					continue
				}
				if statusCode(r.Status) == http.StatusNotFound {
					removed = append(removed, href)
					continue
				}
				etag, _, _, _ := r.found()
				changed[href] = etag
			}
			return changed, removed, false, ms.SyncToken, nil
		case errors.As(err, &se) && se.code < 500:
			// The token expired (valid-sync-token): list everything.
		default:
			return nil, nil, false, "", fmt.Errorf("sync-collection: %w", err)
		}
	}
	ms, err := dav(ctx, hc, "PROPFIND", c.url, "1", listBody)
	if err != nil {
		return nil, nil, false, "", fmt.Errorf("list: %w", err)
	}
	for _, r := range ms.Responses {
		href, herr := hrefPath(base, r.Href)
		if herr != nil || strings.TrimSuffix(href, "/") == strings.TrimSuffix(base.EscapedPath(), "/") || strings.HasSuffix(href, "/") {
			continue
		}
		etag, _, _, _ := r.found()
		changed[href] = etag
	}
	return changed, nil, true, "", nil
}

// fetch reads hrefs with one calendar-multiget and stores what they hold.
// An object that is too big or unreadable is kept with no events, so that
// it is not fetched again until it changes.
func (c *collection) fetch(ctx context.Context, hc *http.Client, base *url.URL, hrefs []string, maxBytes int, p person, log *slog.Logger) error {
	var b strings.Builder
	b.WriteString(multigetHead)
	for _, h := range hrefs {
		b.WriteString("<d:href>" + escapeXML(h) + "</d:href>")
	}
	b.WriteString(multigetTail)
	ms, err := dav(ctx, hc, "REPORT", c.url, "1", b.String())
	if err != nil {
		return err
	}
	for _, r := range ms.Responses {
		href, err := hrefPath(base, r.Href)
		if err != nil || !slices.Contains(hrefs, href) {
			continue
		}
		if statusCode(r.Status) == http.StatusNotFound {
			delete(c.objects, href)
			continue
		}
		etag, _, _, data := r.found()
		comps, err := parseObject([]byte(data), maxBytes, p)
		if err != nil {
			log.Warn("caldav object skipped", "collection", c.url, "href", href, "err", err)
		}
		c.objects[href] = &object{etag: etag, comps: comps}
	}
	return nil
}

// discover finds the account's calendar collections from its principal:
// current-user-principal, then calendar-home-set, then the calendars that
// hold events. Collections that went away are dropped, which ends their
// windows.
func (a *account) discover(ctx context.Context) error {
	base, err := url.Parse(a.cal.Principal)
	if err != nil {
		return err
	}
	wc, err := webdav.NewClient(a.http, a.cal.Principal)
	if err != nil {
		return fmt.Errorf("discover: %w", err)
	}
	principal, err := wc.FindCurrentUserPrincipal(ctx)
	if err != nil {
		return fmt.Errorf("discover current-user-principal: %w", err)
	}
	cc, err := webdavcaldav.NewClient(a.http, a.cal.Principal)
	if err != nil {
		return fmt.Errorf("discover: %w", err)
	}
	home, err := cc.FindCalendarHomeSet(ctx, principal)
	if err != nil {
		return fmt.Errorf("discover calendar-home-set: %w", err)
	}
	cals, err := cc.FindCalendars(ctx, home)
	if err != nil {
		return fmt.Errorf("discover calendars: %w", err)
	}
	found := map[string]bool{}
	for _, cal := range cals {
		if len(cal.SupportedComponentSet) > 0 && !slices.Contains(cal.SupportedComponentSet, ical.CompEvent) {
			continue
		}
		u, err := base.Parse(cal.Path)
		if err != nil {
			continue
		}
		found[u.String()] = true
		if a.collections[u.String()] == nil {
			a.collections[u.String()] = newCollection(u.String())
		}
	}
	for u := range a.collections {
		if !found[u] {
			delete(a.collections, u)
		}
	}
	return nil
}
