// Package prefault maps, in one system call each, the memory that a berth
// process is about to fault in one page at a time: the start of its heap,
// the runtime's small mappings beside it, and its own code. It also grows the main goroutine's stack at once, as
// growing it step by step later faults in pages of the runtime's tables.
// On a virtual machine whose page faults are slow (30 µs each on this
// project's machines), start-up is mostly page faults, and a shell's
// `berth exec` pays for them on every call.
//
// Import it before anything heavy: its init runs early because it imports
// only syscall and unsafe. main calls Ahead for the heap the command goes
// on to use.
package prefault
