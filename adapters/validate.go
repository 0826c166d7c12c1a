package adapters

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
)

// FieldError names one problem with one field of an event.
type FieldError struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Problem }

// InvalidError lists every problem found in an input.
type InvalidError struct {
	Problems []FieldError
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return "invalid event: " + strings.Join(parts, "; ")
}

func (e *InvalidError) add(field, format string, args ...any) {
	e.Problems = append(e.Problems, FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

// err returns e when it holds problems and nil otherwise.
func (e *InvalidError) err() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// ValidSourceName reports whether name can name a source: lower-case
// letters, digits, '-' and '_', not starting with '-' or '_', at most
// MaxSourceLength bytes, usable as a NATS subject token.
func ValidSourceName(name string) bool {
	if name == "" || len(name) > MaxSourceLength || name[0] == '-' || name[0] == '_' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

var (
	validateOnce sync.Once
	validate     *validator.Validate
)

func eventValidator() *validator.Validate {
	validateOnce.Do(func() {
		v := validator.New(validator.WithRequiredStructEnabled())
		v.RegisterTagNameFunc(func(f reflect.StructField) string {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			return name
		})
		_ = v.RegisterValidation("sourcename", func(fl validator.FieldLevel) bool {
			return ValidSourceName(fl.Field().String())
		})
		validate = v
	})
	return validate
}

var statesByType = map[string][]string{
	TypeCall:     {CallRinging, CallActive, CallHeld, CallEnded},
	TypeMeeting:  {MeetingStarted, MeetingEnded, MeetingResync},
	TypePresence: {PresenceSet, PresenceClear},
}

// Validate checks one event and returns an *InvalidError naming every
// problem, with field names prefixed by prefix (such as "events[2].").
func (e *Event) Validate(prefix string) error {
	// The validator names the problems with Event's validate tags; an
	// event that keeps them all, the common case, need not go through it.
	return e.validate(prefix, !e.tagsHold())
}

// validate is Validate, through the validator or not.
func (e *Event) validate(prefix string, useValidator bool) error {
	var problems InvalidError
	if useValidator {
		if err := eventValidator().Struct(e); err != nil {
			var verrs validator.ValidationErrors
			if !errors.As(err, &verrs) {
				return fmt.Errorf("validate event: %w", err)
			}
			for _, fe := range verrs {
				problems.add(prefix+fe.Field(), "%s", describe(fe))
			}
		}
	}
	e.validateState(prefix, &problems)
	e.validateText(prefix, &problems)
	if len(problems.Problems) == 0 {
		return nil
	}
	return &InvalidError{Problems: problems.Problems}
}

// tagsHold reports whether e keeps every rule of Event's validate tags, as
// the validator reads them (lengths count runes). It may say false for an
// event the validator would pass; never true for one it would refuse.
func (e *Event) tagsHold() bool {
	switch {
	case e.ID == "" || !maxRunes(e.ID, MaxIDLength) || !printableASCII(e.ID):
		return false
	case !ValidSourceName(e.Source): // also required and max=64
		return false
	case e.Type != TypeCall && e.Type != TypeMeeting && e.Type != TypePresence:
		return false
	case e.User == "" || !maxRunes(e.User, MaxUserLength):
		return false
	case e.OccurredAt.IsZero() || e.Sequence < 0:
		return false
	case e.Type == TypeCall && e.CallID == "" || !maxRunes(e.CallID, MaxIDLength):
		return false
	case len(e.ExceptCalls) > MaxExceptCalls:
		return false
	case e.CalendarEvent != "" && (!maxRunes(e.CalendarEvent, MaxStringLength) || !printableASCII(e.CalendarEvent)):
		return false
	}
	switch e.ShowAs {
	case "", "free", "tentative", "busy", "oof", "workingElsewhere", "unknown":
	default:
		return false
	}
	for _, c := range e.ExceptCalls {
		if c == "" || !maxRunes(c, MaxIDLength) {
			return false
		}
	}
	return true
}

// maxRunes reports whether s holds at most n runes (the validator's max
// for a string), counting only when its bytes could be more.
func maxRunes(s string, n int) bool {
	return len(s) <= n || utf8.RuneCountInString(s) <= n
}

// printableASCII reports whether every byte of s is in ' '..'~' (the
// validator's printascii).
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// validateText refuses text that is not valid UTF-8, whichever way it got
// into the event (a vendor's form field, a header).
func (e *Event) validateText(prefix string, problems *InvalidError) {
	for _, f := range []struct{ name, value string }{
		{"id", e.ID}, {"source", e.Source}, {"user", e.User}, {"callId", e.CallID}, {"state", e.State},
		{"showAs", e.ShowAs}, {"availability", e.Availability}, {"activity", e.Activity}, {"calendarEvent", e.CalendarEvent},
	} {
		if !utf8.ValidString(f.value) && !slices.ContainsFunc(problems.Problems, func(p FieldError) bool { return p.Field == prefix+f.name }) {
			problems.add(prefix+f.name, "is not valid UTF-8")
		}
	}
	for i, c := range e.ExceptCalls {
		if !utf8.ValidString(c) {
			problems.add(fmt.Sprintf("%sexceptCalls[%d]", prefix, i), "is not valid UTF-8")
		}
	}
}

func (e *Event) validateState(prefix string, problems *InvalidError) {
	states, known := statesByType[e.Type]
	if !known {
		return // the type itself is already reported
	}
	switch {
	case e.CalendarEvent != "" && e.Type == TypeMeeting:
		if e.State != "" || e.Start != nil || e.End != nil || e.ShowAs != "" {
			problems.add(prefix+"calendarEvent", "stands instead of state, start, end and showAs")
		}
	case e.State == "" && e.Type == TypeMeeting && e.Start != nil && e.End != nil:
		// A scheduled window stands instead of a state.
	case e.State == "":
		problems.add(prefix+"state", "required for type %s (one of %s)", e.Type, strings.Join(states, " "))
	case !contains(states, e.State):
		problems.add(prefix+"state", "must be one of %s for type %s", strings.Join(states, " "), e.Type)
	}
	if e.CallID == AllCalls && e.State != CallEnded {
		problems.add(prefix+"callId", "%q (every call of the source) only goes with state ended", AllCalls)
	}
	if len(e.ExceptCalls) > 0 && e.CallID != AllCalls {
		problems.add(prefix+"exceptCalls", "only allowed with callId %q", AllCalls)
	}
	if e.Type != TypeCall {
		if e.CallID != "" {
			problems.add(prefix+"callId", "only allowed for type call")
		}
		if e.Conference {
			problems.add(prefix+"conference", "only allowed for type call")
		}
	}
	if e.Type == TypeMeeting {
		if e.State == MeetingResync && (e.Start != nil || e.End != nil || e.ShowAs != "") {
			problems.add(prefix+"state", "resync carries no start, end or showAs")
		}
		if (e.Start == nil) != (e.End == nil) {
			problems.add(prefix+"end", "start and end go together")
		} else if e.Start != nil && !e.End.After(*e.Start) {
			problems.add(prefix+"end", "must be after start")
		}
	} else {
		if e.Start != nil || e.End != nil {
			problems.add(prefix+"start", "only allowed for type meeting")
		}
		if e.ShowAs != "" {
			problems.add(prefix+"showAs", "only allowed for type meeting")
		}
		if e.CalendarEvent != "" {
			problems.add(prefix+"calendarEvent", "only allowed for type meeting")
		}
	}
	hasPair := e.Availability != "" || e.Activity != ""
	switch {
	case e.Type == TypePresence && e.State == PresenceSet:
		if p := (Pair{e.Availability, e.Activity}); !p.Settable() {
			problems.add(prefix+"availability", "%q is not a settable pair (one of %s)", p.String(), settableList())
		}
	case hasPair:
		problems.add(prefix+"availability", "only allowed for type presence with state set")
	}
}

func describe(fe validator.FieldError) string {
	switch fe.Tag() {
	case "required", "required_if":
		return "required"
	case "max":
		return "longer than " + fe.Param() + " characters"
	case "gte":
		return "must be at least " + fe.Param()
	case "oneof":
		return "must be one of " + fe.Param()
	case "printascii":
		return "must be printable ASCII"
	case "sourcename":
		return "must be lower-case letters, digits, '-' or '_'"
	default:
		return "fails " + fe.Tag()
	}
}

func settableList() string {
	names := make([]string, len(SettablePairs))
	for i, p := range SettablePairs {
		names[i] = p.String()
	}
	return strings.Join(names, ", ")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
