package caldav

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/teambition/rrule-go"
)

// Limits of the iCalendar conversion. They hold whatever a calendar
// object says, so that an invitation from a stranger (which lands in the
// calendar by iMIP) cannot make a poll slow or large.
const (
	// maxComponents caps the VEVENTs read from one calendar object (a
	// series and its overrides).
	maxComponents = 500
	// maxSteps caps the rule iterations spent on one recurring series; a
	// weekly meeting that began twenty years ago needs about a thousand.
	maxSteps = 20000
	// maxDuration caps one occurrence's length.
	maxDuration = 366 * 24 * time.Hour
)

// Occurrence is one busy window of a calendar event: a single event, one
// instance of a recurring series, or an override of one.
type Occurrence struct {
	// UID is the event's UID.
	UID string `json:"uid"`
	// RecurrenceID is the instance's original start (UTC); zero for an
	// event that does not recur.
	RecurrenceID time.Time `json:"recurrenceId,omitzero"`
	// Start and End bound the window (UTC).
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// ShowAs is busy, tentative, oof or workingElsewhere.
	ShowAs string `json:"showAs"`
}

// component is one VEVENT reduced to what decides whether, and when, it
// makes the person busy.
type component struct {
	uid string
	// rid is the RECURRENCE-ID of an override, zero for a master.
	rid      time.Time
	start    time.Time
	duration time.Duration
	// rule is the master's RRULE, nil when it does not recur.
	rule            *rrule.ROption
	rdates, exdates []time.Time
	// showAs is empty when the component does not make the person busy
	// (cancelled, transparent, declined, free); an override that is not
	// busy still removes its instance from the series.
	showAs string
}

// person says who the calendar belongs to: the addresses by which the
// person appears as an ATTENDEE, and the zone of floating times and dates.
type person struct {
	addresses []string
	loc       *time.Location
}

// parseObject reads one calendar object (an iCalendar document holding one
// event series) into components.
func parseObject(data []byte, maxBytes int, p person) ([]component, error) {
	if len(data) > maxBytes {
		return nil, fmt.Errorf("calendar object of %d bytes exceeds %d", len(data), maxBytes)
	}
	cal, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("decode iCalendar: %w", err)
	}
	var out []component
	for _, child := range cal.Children {
		if child.Name != ical.CompEvent {
			continue
		}
		if len(out) == maxComponents {
			return nil, fmt.Errorf("calendar object holds more than %d events", maxComponents)
		}
		c, ok := readComponent(child, p)
		if ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// decode parses an iCalendar document. go-ical panics on some malformed
// lines (a parameter without a value at the end of a line), so a panic
// is turned into an error here.
func decode(data []byte) (cal *ical.Calendar, err error) {
	defer func() {
		if r := recover(); r != nil {
			cal, err = nil, fmt.Errorf("malformed iCalendar: %v", r)
		}
	}()
	return ical.NewDecoder(bytes.NewReader(data)).Decode()
}

// readComponent reduces one VEVENT; it reports false for a VEVENT that
// can not be placed in time (no UID, no or bad DTSTART, no length).
func readComponent(ev *ical.Component, p person) (component, bool) {
	uid := propText(ev, ical.PropUID)
	startProp := ev.Props.Get(ical.PropDateTimeStart)
	if uid == "" || startProp == nil {
		return component{}, false
	}
	start, err := dateTime(startProp, p.loc)
	if err != nil {
		return component{}, false
	}
	c := component{uid: uid, start: start, showAs: showAs(ev, p)}
	switch {
	case ev.Props.Get(ical.PropDateTimeEnd) != nil:
		end, err := dateTime(ev.Props.Get(ical.PropDateTimeEnd), p.loc)
		if err != nil {
			return component{}, false
		}
		c.duration = end.Sub(start)
	case ev.Props.Get(ical.PropDuration) != nil:
		if c.duration, err = ev.Props.Get(ical.PropDuration).Duration(); err != nil {
			return component{}, false
		}
	case startProp.ValueType() == ical.ValueDate || len(startProp.Value) == len("20060102"):
		c.duration = 24 * time.Hour
	}
	if c.duration <= 0 || c.duration > maxDuration {
		// A point in time makes nobody busy; an endless one is nonsense.
		return component{}, false
	}
	if ridProp := ev.Props.Get(ical.PropRecurrenceID); ridProp != nil {
		if c.rid, err = dateTime(ridProp, p.loc); err != nil {
			return component{}, false
		}
		return c, true // an override's own RRULE is ignored
	}
	if ev.Props.Get(ical.PropRecurrenceRule) != nil {
		opt, err := ev.Props.RecurrenceRule()
		if err != nil || opt.Freq > rrule.DAILY {
			// Rules finer than daily describe no meeting; their
			// expansion could spin for a long time, so they are not read.
			return component{}, false
		}
		opt.Dtstart = start
		c.rule = opt
	}
	c.exdates = dateList(ev, ical.PropExceptionDates, p.loc)
	c.rdates = dateList(ev, ical.PropRecurrenceDates, p.loc)
	return c, true
}

// showAs decides the component's free/busy status for the person.
func showAs(ev *ical.Component, p person) string {
	if strings.EqualFold(propText(ev, ical.PropStatus), "CANCELLED") ||
		strings.EqualFold(propText(ev, ical.PropTransparency), "TRANSPARENT") {
		return ""
	}
	partstat := ""
	for _, a := range ev.Props.Values(ical.PropAttendee) {
		addr := strings.ToLower(strings.TrimSpace(a.Value))
		addr = strings.TrimPrefix(addr, "mailto:")
		if slices.Contains(p.addresses, addr) {
			partstat = strings.ToUpper(a.Params.Get(ical.ParamParticipationStatus))
			break
		}
	}
	if partstat == "DECLINED" {
		return ""
	}
	status := "busy"
	switch strings.ToUpper(propText(ev, "X-MICROSOFT-CDO-BUSYSTATUS")) {
	case "FREE":
		return ""
	case "TENTATIVE":
		status = "tentative"
	case "OOF":
		status = "oof"
	case "WORKINGELSEWHERE":
		status = "workingElsewhere"
	}
	if status == "busy" && (partstat == "TENTATIVE" || partstat == "NEEDS-ACTION" ||
		strings.EqualFold(propText(ev, ical.PropStatus), "TENTATIVE")) {
		status = "tentative"
	}
	return status
}

// propText returns a property's value, or "" when it is absent.
func propText(ev *ical.Component, name string) string {
	p := ev.Props.Get(name)
	if p == nil {
		return ""
	}
	return strings.TrimSpace(p.Value)
}

// dateTime reads a DATE or DATE-TIME value; a TZID that names no zone
// known here (Windows names, say) falls back to loc instead of losing the
// event.
func dateTime(p *ical.Prop, loc *time.Location) (time.Time, error) {
	t, err := p.DateTime(loc)
	if err != nil && p.Params.Get(ical.PropTimezoneID) != "" {
		bare := *p
		bare.Params = ical.Params{}
		for k, v := range p.Params {
			if k != ical.PropTimezoneID {
				bare.Params[k] = v
			}
		}
		t, err = bare.DateTime(loc)
	}
	return t, err
}

// dateList reads every value of a comma-separated date property (EXDATE,
// RDATE), skipping values it can not read and periods.
func dateList(ev *ical.Component, name string, loc *time.Location) []time.Time {
	var out []time.Time
	for _, p := range ev.Props.Values(name) {
		for _, v := range strings.Split(p.Value, ",") {
			one := p
			one.Value = strings.TrimSpace(v)
			if t, err := dateTime(&one, loc); err == nil {
				out = append(out, t)
			}
			if len(out) >= maxSteps {
				return out
			}
		}
	}
	return out
}

// errTooMany reports an expansion cut short at its cap.
var errTooMany = errors.New("too many occurrences")

// expand returns the busy occurrences of components that overlap
// [from, to), at most limit of them (errTooMany beyond).
func expand(comps []component, from, to time.Time, limit int) ([]Occurrence, error) {
	overrides := map[string]map[int64]bool{}
	for _, c := range comps {
		if !c.rid.IsZero() {
			if overrides[c.uid] == nil {
				overrides[c.uid] = map[int64]bool{}
			}
			overrides[c.uid][c.rid.Unix()] = true
		}
	}
	var out []Occurrence
	add := func(c component, rid, start time.Time) error {
		end := start.Add(c.duration)
		if c.showAs == "" || !end.After(from) || !start.Before(to) {
			return nil
		}
		if len(out) == limit {
			return errTooMany
		}
		if !rid.IsZero() {
			rid = rid.UTC()
		}
		out = append(out, Occurrence{UID: c.uid, RecurrenceID: rid, Start: start.UTC(), End: end.UTC(), ShowAs: c.showAs})
		return nil
	}
	for _, c := range comps {
		var err error
		switch {
		case !c.rid.IsZero():
			err = add(c, c.rid, c.start)
		case c.rule == nil && len(c.rdates) == 0:
			err = add(c, time.Time{}, c.start)
		default:
			err = expandSeries(c, overrides[c.uid], to, func(t time.Time) error { return add(c, t, t) })
		}
		if err != nil {
			return out, err
		}
	}
	slices.SortFunc(out, func(a, b Occurrence) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.UID, b.UID)
	})
	return out, nil
}

// expandSeries calls yield with the start of every instance of a master
// that begins before to, leaving out EXDATEs and overridden instances.
func expandSeries(c component, overridden map[int64]bool, to time.Time, yield func(time.Time) error) error {
	skip := map[int64]bool{}
	for _, t := range c.exdates {
		skip[t.Unix()] = true
	}
	for k := range overridden {
		skip[k] = true
	}
	seen := map[int64]bool{}
	emit := func(t time.Time) error {
		if skip[t.Unix()] || seen[t.Unix()] {
			return nil
		}
		seen[t.Unix()] = true
		return yield(t)
	}
	for _, t := range c.rdates {
		if t.Before(to) {
			if err := emit(t); err != nil {
				return err
			}
		}
	}
	if c.rule == nil {
		return emit(c.start) // DTSTART is the first instance of an RDATE set
	}
	r, err := rrule.NewRRule(*c.rule)
	if err != nil {
		return nil // a rule rrule-go refuses describes no instance
	}
	next := r.Iterator()
	for range maxSteps {
		t, ok := next()
		if !ok || !t.Before(to) {
			return nil
		}
		if err := emit(t); err != nil {
			return err
		}
	}
	return nil
}
