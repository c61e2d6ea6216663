//go:build linux && (amd64 || arm64)

package prefault

import (
	"go/build"
	"reflect"
	"slices"
	"testing"
)

// The package is only worth having if its init runs before the heavy
// ones, and Go initialises a package only after everything it imports.
func TestImportsNothingThatWaits(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if !slices.Contains([]string{"syscall", "unsafe"}, imp) {
			t.Errorf("prefault imports %s; its init would wait for it", imp)
		}
	}
}

// The segments found must hold this package's own code, and none of them
// may be writable data (populating that would copy it).
func TestCodeSegmentsHoldTheCode(t *testing.T) {
	segs := codeSegments()
	if len(segs) == 0 {
		t.Fatal("no read-only segments found")
	}
	pc := reflect.ValueOf(codeSegments).Pointer()
	var found bool
	for _, s := range segs {
		if s[0] <= pc && pc < s[0]+s[1] {
			found = true
		}
		if data := uintptr(reflect.ValueOf(&heapMark).Pointer()); s[0] <= data && data < s[0]+s[1] {
			t.Errorf("segment %#x+%#x holds writable data at %#x", s[0], s[1], data)
		}
	}
	if !found {
		t.Errorf("no segment holds the code at %#x: %#x", pc, segs)
	}
}
