//go:build linux && (amd64 || arm64)

package prefault

import (
	"go/build"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"syscall"
	"testing"
	"unsafe"
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
		if data := uintptr(reflect.ValueOf(&firstChunk).Pointer()); s[0] <= data && data < s[0]+s[1] {
			t.Errorf("segment %#x+%#x holds writable data at %#x", s[0], s[1], data)
		}
	}
	if !found {
		t.Errorf("no segment holds the code at %#x: %#x", pc, segs)
	}
}

// Where the heap starts is random, so the check runs in eight processes.
func TestAheadPopulatesTheRunway(t *testing.T) {
	if os.Getenv("PREFAULT_CHILD") != "" {
		const runway = 1 << 20
		Ahead(runway)
		probe = new([64 << 10]byte)
		from := uintptr(unsafe.Pointer(probe)) + unsafe.Sizeof(*probe)
		probe = nil
		if missing := notResident(from, runway); missing > 0 {
			t.Fatalf("after Ahead(%d): %d pages of the next %d bytes from %#x are not resident", runway, missing, runway, from)
		}
		return
	}
	for range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAheadPopulatesTheRunway$")
		cmd.Env = append(os.Environ(), "PREFAULT_CHILD=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
}

// notResident counts the pages of [from, from+n) that mincore says are not
// in memory.
func notResident(from, n uintptr) int {
	page := uintptr(os.Getpagesize())
	start := from &^ (page - 1)
	vec := make([]byte, (from+n-start+page-1)/page)
	if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, start, uintptr(len(vec)*int(page)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		return len(vec)
	}
	missing := 0
	for _, v := range vec {
		if v&1 == 0 {
			missing++
		}
	}
	return missing
}

// The frame must stay on the stack, or growStack grows nothing.
func TestGrowStackAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(3, func() { growStack() }); n != 0 {
		t.Errorf("growStack allocates %v objects; its frame moved to the heap", n)
	}
}

func TestAnonMappings(t *testing.T) {
	for _, tc := range []struct {
		name, maps string
		want       [][2]uintptr
	}{{
		name: "the runtime's mappings among the others",
		maps: `00400000-00b77000 r-xp 00000000 fe:00 9980077                            /work/main/bin/berth
01618000-01682000 rw-p 01218000 fe:00 9980077                            /work/main/bin/berth
01682000-036cc000 rw-p 00000000 00:00 0 
399a0e800000-399a0f000000 rw-p 00000000 00:00 0 
399a0f000000-399a10000000 ---p 00000000 00:00 0 
7f565f5e0000-7f565f800000 rw-p 00000000 00:00 0
7f56a6308000-7f56a630c000 r--p 00000000 00:00 0                          [vvar]
7ffe1fc39000-7ffe1fc5a000 rw-p 00000000 00:00 0                          [stack]
7f56a62a8000-7f56a6308000 rw-s 00000000 00:05 1234                       /dev/zero (deleted)
`,
		want: [][2]uintptr{{0x01682000, 0x036cc000}, {0x399a0e800000, 0x399a0f000000}, {0x7f565f5e0000, 0x7f565f800000}},
	}, {
		name: "cut short in the middle of a line",
		maps: "7f565f5e0000-7f565f800000 rw-p 00000000 00:00 0\n7f565f800000-7f56",
		want: [][2]uintptr{{0x7f565f5e0000, 0x7f565f800000}},
	}, {
		name: "garbage",
		maps: "zz-7f rw-p 0 00:00 0\n7f-zz rw-p 0 00:00 0\n20-10 rw-p 0 00:00 0\n-\n\n",
	}, {
		name: "empty",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var got [][2]uintptr
			anonMappings([]byte(tc.maps), func(lo, hi uintptr) { got = append(got, [2]uintptr{lo, hi}) })
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("anonMappings = %#x, want %#x", got, tc.want)
			}
		})
	}
}

var heapObject *[64]byte

// The file read is the one the kernel writes, and it holds at least the
// heap, whose mapping is anonymous.
func TestReadMapsFindsTheHeap(t *testing.T) {
	var buf [16 << 10]byte
	heapObject = new([64]byte)
	heap := uintptr(unsafe.Pointer(heapObject))
	var found bool
	anonMappings(readMaps(buf[:]), func(lo, hi uintptr) {
		found = found || lo <= heap && heap < hi
	})
	if !found {
		t.Errorf("no anonymous mapping in /proc/self/maps holds the heap object at %#x", heap)
	}
}
