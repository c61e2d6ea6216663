//go:build !(linux && (amd64 || arm64))

package prefault

// Ahead does nothing here: the page faults it saves are Linux's.
func Ahead(runway uintptr) {}
