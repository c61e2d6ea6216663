package agent

import (
	"io"
	"net"
	"sync"
)

// copyBuf sizes tunnel copies: big enough to keep a local pipe busy.
const copyBuf = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}

// join copies a and b into each other until both directions end, passing
// each side's EOF on as a half-close, then closes both.
func join(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		var err error
		if _, ok := src.(*net.TCPConn); ok && isTCP(dst) {
			_, err = io.Copy(dst, src) // TCP to TCP: the kernel splices
		} else {
			bp := bufPool.Get().(*[]byte)
			_, err = io.CopyBuffer(onlyWriter{dst}, onlyReader{src}, *bp)
			bufPool.Put(bp)
		}
		if err != nil {
			// A broken side ends both directions.
			a.Close()
			b.Close()
			return
		}
		closeWrite(dst)
	}
	go pipe(a, b)
	go pipe(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

func isTCP(c net.Conn) bool {
	_, ok := c.(*net.TCPConn)
	return ok
}

// closeWrite half-closes c: a yamux stream's Close sends FIN but keeps
// reading; a TCP conn has CloseWrite.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// onlyWriter and onlyReader hide ReaderFrom/WriterTo so CopyBuffer uses our
// large pooled buffer instead of a 32 KiB one of its own.
type onlyWriter struct{ io.Writer }
type onlyReader struct{ io.Reader }
