//go:build !race

package watch

// raceOn: the race detector changes what the heap holds, so tests of
// the live heap skip under it.
const raceOn = false
