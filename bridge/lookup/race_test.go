//go:build race

package lookup

// raceOn: the race detector changes allocation counts (sync.Pool drops
// some of what it is given).
const raceOn = true
