package bridge_test

import (
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

// paceTeamsChanges makes the Teams changes of the watch benchmarks through
// em: seconds*perSecond of them, perSecond a second, numbered from first.
// Change n puts person n mod people in a Teams call when n/people is even
// and makes them available when it is odd; made is told of it (the
// person's index and whether they are in a call) just before it is set,
// so that its arrival can be timed. It returns how many changes it made.
func paceTeamsChanges(b *testing.B, em *emulator.Emulator, first, seconds, perSecond, people int, made func(who int, call bool)) int {
	b.Helper()
	start := time.Now()
	count := seconds * perSecond
	for i := range count {
		// Real time must pass: changes are paced at perSecond.
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(perSecond))))
		n := first + i
		who, call := n%people, n/people%2 == 0
		pair := [2]string{"Busy", "InACall"}
		if !call {
			pair = [2]string{"Available", "Available"}
		}
		made(who, call)
		if err := em.SetTeamsSession(watchUser(who), pair[0], pair[1]); err != nil {
			b.Fatal(err)
		}
	}
	return count
}
