package emulator

import "time"

// Graph's presence timing.
const (
	// inactiveAfter is when an Available app session without a refresh
	// becomes Available/AvailableInactive.
	inactiveAfter = 5 * time.Minute
	// awayAfter is when it becomes Away/Away.
	awayAfter = 10 * time.Minute
)

// Session kinds.
const (
	KindApp   = "app"   // set by an application through setPresence
	KindTeams = "teams" // a simulated Teams client (admin API)
)

// Pair is an availability and an activity, such as Busy/InACall.
type Pair struct {
	Availability string
	Activity     string
}

// String writes the pair as "Availability/Activity".
func (p Pair) String() string { return p.Availability + "/" + p.Activity }

// offline is the presence of a user without sessions.
var offline = Pair{"Offline", "Offline"}

// appPairs are the pairs setPresence accepts.
var appPairs = []Pair{
	{"Available", "Available"}, {"Busy", "InACall"}, {"Busy", "InAConferenceCall"},
	{"Away", "Away"}, {"DoNotDisturb", "Presenting"},
}

// preferredPairs are the pairs setUserPreferredPresence accepts; they are
// also the statuses a user can pick by hand in Teams.
var preferredPairs = []Pair{
	{"Available", "Available"}, {"Busy", "Busy"}, {"DoNotDisturb", "DoNotDisturb"},
	{"BeRightBack", "BeRightBack"}, {"Away", "Away"}, {"Offline", "OffWork"},
}

// availabilities and activities are the values Graph shows; a simulated
// Teams client session may use any of them. Microsoft's September 2025
// changelog also lists InACall, InAMeeting, Presenting and Focusing as
// availabilities (and Focusing as an activity), so that clients can be
// tested against values they did not expect.
var (
	availabilities = []string{"Available", "AvailableIdle", "Away", "BeRightBack", "Busy", "BusyIdle", "DoNotDisturb", "Offline", "PresenceUnknown", "InACall", "InAMeeting", "Presenting", "Focusing"}
	activities     = []string{"Available", "AvailableInactive", "Away", "BeRightBack", "Busy", "DoNotDisturb", "InACall", "InAConferenceCall", "Inactive", "InAMeeting", "Offline", "OffWork", "OutOfOffice", "PresenceUnknown", "Presenting", "UrgentInterruptionsOnly", "Focusing"}
)

// rank orders availabilities for aggregation: Graph documents
// DoNotDisturb > Busy > Available > Away; the idle variants sit just below
// their base, BeRightBack between Available and Away, and Offline and
// PresenceUnknown last. The changelog's new availabilities rank with what
// they resemble: InACall and InAMeeting as Busy, Presenting and Focusing
// as DoNotDisturb (a guess: Microsoft documents no order for them).
var rank = map[string]int{
	"DoNotDisturb": 9, "Presenting": 9, "Focusing": 9, "Busy": 8, "InACall": 8, "InAMeeting": 8, "BusyIdle": 7, "Available": 6, "AvailableIdle": 5,
	"BeRightBack": 4, "Away": 3, "Offline": 2, "PresenceUnknown": 1,
}

// sessionState is one presence session of a user.
type sessionState struct {
	id        string
	kind      string // KindApp or KindTeams
	appID     string // the application that set an app session
	pair      Pair
	refreshed time.Time
	expires   time.Time // zero: never (Teams client sessions by default)
}

// preferredState is a user-preferred presence.
type preferredState struct {
	pair    Pair
	set     time.Time
	expires time.Time
}

// expired tells whether the session has ended by now.
func (s *sessionState) expired(now time.Time) bool {
	return !s.expires.IsZero() && !now.Before(s.expires)
}

// effective is the session's pair at now, after Graph's inactivity
// timeout: an Available app session fades to Available/AvailableInactive
// 5 minutes after its last refresh and to Away/Away 5 minutes later.
// Teams client sessions are kept alive by their (simulated) client and do
// not fade.
func (s *sessionState) effective(now time.Time) Pair {
	if s.kind != KindApp || s.pair.Availability != "Available" {
		return s.pair
	}
	switch idle := now.Sub(s.refreshed); {
	case idle >= awayAfter:
		return Pair{"Away", "Away"}
	case idle >= inactiveAfter:
		return Pair{"Available", "AvailableInactive"}
	}
	return s.pair
}

// fadeTimes are the instants at which the session's effective pair or
// existence changes on its own.
func (s *sessionState) fadeTimes() []time.Time {
	var times []time.Time
	if s.kind == KindApp && s.pair.Availability == "Available" {
		times = append(times, s.refreshed.Add(inactiveAfter), s.refreshed.Add(awayAfter))
	}
	if !s.expires.IsZero() {
		times = append(times, s.expires)
	}
	return times
}

// aggregate is the user's presence at now from sessions and a preferred
// presence, as Teams computes it: no live session is Offline/Offline; a
// live preferred presence wins over every session; otherwise the session
// with the highest-ranked effective availability wins, the most recently
// refreshed on a tie, then the smallest session id.
func aggregate(sessions []*sessionState, preferred *preferredState, now time.Time) Pair {
	var best *sessionState
	var bestPair Pair
	for _, s := range sessions {
		if s.expired(now) {
			continue
		}
		p := s.effective(now)
		if best == nil || better(s, p, best, bestPair) {
			best, bestPair = s, p
		}
	}
	switch {
	case best == nil:
		return offline
	case preferred != nil && now.Before(preferred.expires):
		return preferred.pair
	}
	return bestPair
}

// better tells whether session s showing p beats best showing bestPair.
func better(s *sessionState, p Pair, best *sessionState, bestPair Pair) bool {
	if rank[p.Availability] != rank[bestPair.Availability] {
		return rank[p.Availability] > rank[bestPair.Availability]
	}
	if !s.refreshed.Equal(best.refreshed) {
		return s.refreshed.After(best.refreshed)
	}
	return s.id < best.id
}
