//go:build linux && (amd64 || arm64)

package prefault

import (
	"syscall"
	"unsafe"
)

// Linux 5.14's madvise advice; older kernels answer EINVAL, and berth
// starts as it did before.
const (
	madvPopulateRead  = 22
	madvPopulateWrite = 23
)

// heapChunk is the unit in which Go's runtime maps its heap (its
// pallocChunkBytes), aligned to its size. Go 1.26 starts the heap at a
// random page of its first chunk, so the heap that start-up touches, about
// 3 MiB for `berth exec`, runs on into the next chunk about half the time.
const heapChunk = 4 << 20

// initRunway is about as much heap as package initialisation touches after
// this package's; the rest is main's to ask for.
const initRunway = 1 << 20

// ELF auxiliary vector keys, and program header fields.
const (
	atPHDR  = 3
	atPHNUM = 5
	ptLoad  = 1
	ptPHDR  = 6
	pfX     = 1
)

var (
	firstChunk uintptr // the chunk populated first
	spilled    uintptr // the chunk populated after a spill, if any
	probe      *[64 << 10]byte
	spill      []byte
)

func init() {
	mark := new([64]byte)
	firstChunk = uintptr(unsafe.Pointer(mark)) &^ (heapChunk - 1)
	madvise(firstChunk, heapChunk, madvPopulateWrite)
	Ahead(initRunway)
	growStack()
	for _, seg := range codeSegments() {
		madvise(seg[0], seg[1], madvPopulateRead)
	}
	populateRuntimeMaps()
}

// Bounds on the runtime's mappings that populateRuntimeMaps fills.
const (
	heapArena      = 64 << 20 // the runtime's heapArenaBytes
	maxRuntimeMap  = 2560 << 10
	maxRuntimeMaps = 4 << 20
)

// populateRuntimeMaps populates the runtime's own small mappings outside
// the heap: the blocks of its span sets, its arena metadata and its
// persistent allocations, which package initialisation writes a page at a
// time (span set blocks alone took 56 faults in `berth exec`). At this
// point every anonymous mapping is the runtime's; the large ones are
// reservations it touches sparsely, and the heap's arena has had its own
// treatment. About 3.5 MB, for 2 ms less of `berth exec -- true`.
func populateRuntimeMaps() {
	var buf [16 << 10]byte
	arena := firstChunk &^ (heapArena - 1)
	budget := uintptr(maxRuntimeMaps)
	anonMappings(readMaps(buf[:]), func(lo, hi uintptr) {
		if n := hi - lo; n <= maxRuntimeMap && n <= budget && (hi <= arena || lo >= arena+heapArena) {
			madvise(lo, n, madvPopulateWrite)
			budget -= n
		}
	})
}

// readMaps reads /proc/self/maps into buf, or as much of it as fits.
func readMaps(buf []byte) []byte {
	fd, err := syscall.Open("/proc/self/maps", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer syscall.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		if err != nil || m <= 0 {
			break
		}
		n += m
	}
	return buf[:n]
}

// anonMappings calls fn with the bounds of each private, writable,
// anonymous mapping (inode 0, no name) in the text of /proc/self/maps:
//
//	7f565f5e0000-7f565f800000 rw-p 00000000 00:00 0
func anonMappings(maps []byte, fn func(lo, hi uintptr)) {
	for len(maps) > 0 {
		line := maps
		if i := indexByte(maps, '\n'); i >= 0 {
			line, maps = maps[:i], maps[i+1:]
		} else {
			maps = nil
		}
		var f [6][]byte
		nf := 0
		for nf < len(f) {
			for len(line) > 0 && line[0] == ' ' {
				line = line[1:]
			}
			if len(line) == 0 {
				break
			}
			end := indexByte(line, ' ')
			if end < 0 {
				end = len(line)
			}
			f[nf], line = line[:end], line[end:]
			nf++
		}
		if nf != 5 || string(f[1]) != "rw-p" || string(f[4]) != "0" {
			continue // not private and writable, or file-backed, or named
		}
		dash := indexByte(f[0], '-')
		if dash < 0 {
			continue
		}
		lo, ok1 := parseHex(f[0][:dash])
		hi, ok2 := parseHex(f[0][dash+1:])
		if ok1 && ok2 && lo < hi {
			fn(lo, hi)
		}
	}
}

// indexByte and parseHex stand in for bytes and strconv, which this
// package may not import (see the package's doc).
func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func parseHex(b []byte) (uintptr, bool) {
	if len(b) == 0 || len(b) > 2*int(unsafe.Sizeof(uintptr(0))) {
		return 0, false
	}
	var v uintptr
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | uintptr(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | uintptr(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// Ahead populates the heap that the next runway bytes of allocation will
// touch, when that runs past the chunk in use. The runtime maps the next
// chunk only when an object does not fit in this one: one object the size
// of what is left here (at most runway: the collector takes no notice of
// it) makes it map the next, which is then populated whole for the objects
// that follow. Collecting a bigger object at once cost more faults than it
// saved.
func Ahead(runway uintptr) {
	// An object of this size gets pages of its own, at the free end of the
	// heap.
	probe = new([64 << 10]byte)
	end := uintptr(unsafe.Pointer(probe)) + unsafe.Sizeof(*probe)
	probe = nil
	chunk := end &^ (heapChunk - 1)
	if chunk != firstChunk && chunk != spilled {
		// Package initialisation ran on into a chunk of its own.
		madvise(chunk, heapChunk, madvPopulateWrite)
	}
	next := chunk + heapChunk
	if next-end < runway {
		spill = make([]byte, next-end+8<<10)
		madvise(next, heapChunk, madvPopulateWrite)
		spill, spilled = nil, next
	}
}

// growStack grows the stack of the goroutine that runs package
// initialisation and main to 128 KiB while it is shallow. Grown in steps
// later, each copy adjusts every frame on a deep stack, and reads the
// runtime's tables for each of those functions: pages that fault in only
// for that. This saves about 3 ms of `berth exec`.
//
//go:noinline
func growStack() byte {
	var frame [96 << 10]byte
	return last(frame[:])
}

//go:noinline
func last(b []byte) byte { return b[len(b)-1] }

func madvise(addr, n, advice uintptr) {
	// Best effort: on failure the pages fault in as they would have.
	syscall.Syscall(syscall.SYS_MADVISE, addr, n, advice)
}

// codeSegments returns the start and length of each loaded segment of the
// binary that holds code. Its read-only data is left to fault (populating
// it too saved no more than this machine's noise, for 11 MB more mapped),
// and so is writable data (populating that would copy every page).
func codeSegments() [][2]uintptr {
	phdr, phnum := auxv()
	if phdr == 0 || phnum == 0 {
		return nil
	}
	type progHeader struct { // Elf64_Phdr
		typ, flags                              uint32
		off, vaddr, paddr, filesz, memsz, align uint64
	}
	// The headers lie in the binary's first segment, outside Go's heap.
	first := *(**progHeader)(unsafe.Pointer(&phdr))
	hdrs := unsafe.Slice(first, phnum)
	// A position-independent binary is loaded at an offset from its
	// addresses, which its PT_PHDR entry gives away.
	var bias uintptr
	for _, h := range hdrs {
		if h.typ == ptPHDR {
			bias = phdr - uintptr(h.vaddr)
		}
	}
	var segs [][2]uintptr
	for _, h := range hdrs {
		if h.typ == ptLoad && h.flags&pfX != 0 {
			segs = append(segs, [2]uintptr{uintptr(h.vaddr) + bias, uintptr(h.memsz)})
		}
	}
	return segs
}

// auxv reads where the kernel put the program headers.
func auxv() (phdr, phnum uintptr) {
	fd, err := syscall.Open("/proc/self/auxv", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0
	}
	defer syscall.Close(fd)
	var buf [4096]byte
	n, err := syscall.Read(fd, buf[:])
	if err != nil || n <= 0 {
		return 0, 0
	}
	words := unsafe.Slice((*uintptr)(unsafe.Pointer(&buf[0])), n/int(unsafe.Sizeof(uintptr(0))))
	for i := 0; i+1 < len(words); i += 2 {
		switch words[i] {
		case atPHDR:
			phdr = words[i+1]
		case atPHNUM:
			phnum = words[i+1]
		}
	}
	return phdr, phnum
}
