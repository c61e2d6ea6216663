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
// pallocChunkBytes), aligned to its size: the chunk holding this package's
// first object is mapped whole, and its pages not yet touched are the ones
// package initialisation and `berth exec` go on to fill.
const heapChunk = 4 << 20

// ELF auxiliary vector keys, and program header fields.
const (
	atPHDR  = 3
	atPHNUM = 5
	ptLoad  = 1
	ptPHDR  = 6
	pfX     = 1
)

var heapMark *[64]byte

func init() {
	heapMark = new([64]byte)
	madvise(uintptr(unsafe.Pointer(heapMark))&^(heapChunk-1), heapChunk, madvPopulateWrite)
	for _, seg := range codeSegments() {
		madvise(seg[0], seg[1], madvPopulateRead)
	}
}

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
