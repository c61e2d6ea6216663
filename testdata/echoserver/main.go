// Command echoserver is a static test and benchmark fixture that berth
// copies into containers, even ones built FROM scratch.
//
//	echoserver ADDR        serve TCP on ADDR; each connection's first byte picks a mode:
//	                         'e' echo until EOF
//	                         's' sink: discard until EOF, then write "ok"
//	                         'g' generate: read an 8-byte big-endian count, write that many bytes
//	echoserver relay ADDR  copy stdin to a TCP connection to ADDR and the connection to stdout
//	                       (the "bare exec stream" peer in the benchmarks)
package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
)

func main() {
	switch {
	case len(os.Args) == 2:
		serve(os.Args[1])
	case len(os.Args) == 3 && os.Args[1] == "relay":
		relay(os.Args[2])
	default:
		fmt.Fprintln(os.Stderr, "usage: echoserver ADDR | echoserver relay ADDR")
		os.Exit(2)
	}
}

func serve(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening on", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		go handle(c)
	}
}

func handle(c net.Conn) {
	defer c.Close()
	var mode [1]byte
	if _, err := io.ReadFull(c, mode[:]); err != nil {
		return
	}
	buf := make([]byte, 256<<10)
	switch mode[0] {
	case 'e':
		io.CopyBuffer(c, c, buf)
	case 's':
		io.CopyBuffer(io.Discard, c, buf)
		c.Write([]byte("ok"))
	case 'g':
		var n [8]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		left := binary.BigEndian.Uint64(n[:])
		for i := range buf {
			buf[i] = byte('a' + i%26)
		}
		for left > 0 {
			chunk := buf
			if uint64(len(chunk)) > left {
				chunk = chunk[:left]
			}
			if _, err := c.Write(chunk); err != nil {
				return
			}
			left -= uint64(len(chunk))
		}
	}
}

func relay(addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.CopyBuffer(os.Stdout, c, make([]byte, 256<<10))
	}()
	io.CopyBuffer(c, os.Stdin, make([]byte, 256<<10))
	c.(*net.TCPConn).CloseWrite()
	wg.Wait()
}
