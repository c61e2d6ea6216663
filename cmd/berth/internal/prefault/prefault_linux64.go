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
