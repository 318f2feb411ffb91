//go:build race

package media

// raceEnabled: the race detector slows every packet ~10x.
const raceEnabled = true
