//go:build !race

package rpc

// raceEnabled scales tests whose JSON work the race detector makes slow.
const raceEnabled = false
