// Command echoserver is a static test and benchmark fixture that berth
// copies into containers, even ones built FROM scratch.
//
//	echoserver ADDR        serve TCP on ADDR; each connection's first byte picks a mode:
//	                         'e' echo until EOF
//	                         's' sink: discard until EOF, then write "ok"
//	                         'g' generate: read an 8-byte big-endian count, write that many bytes
//	echoserver relay ADDR  copy stdin to a TCP connection to ADDR and the connection to stdout
//	                       (the "bare exec stream" peer in the benchmarks)
//	echoserver gen N       write N bytes of text lines to stdout, 64 KiB at a time
//	echoserver gen N LINE  the same with LINE (plus a newline) as the line
package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
)

func main() {
	switch {
	case len(os.Args) == 2:
		serve(os.Args[1])
	case len(os.Args) == 3 && os.Args[1] == "relay":
		relay(os.Args[2])
	case (len(os.Args) == 3 || len(os.Args) == 4) && os.Args[1] == "gen":
		n, err := strconv.ParseInt(os.Args[2], 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		line := "/workspaces/proj/src/main.go:42:7: a line of build output, 64 bytes"
		if len(os.Args) == 4 {
			line = os.Args[3]
		}
		gen(n, []byte(line+"\n"))
	default:
		fmt.Fprintln(os.Stderr, "usage: echoserver ADDR | echoserver relay ADDR | echoserver gen N [LINE]")
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

func gen(n int64, line []byte) {
	buf := make([]byte, 0, 64<<10)
	for len(buf)+len(line) <= cap(buf) {
		buf = append(buf, line...)
	}
	for n > 0 {
		chunk := buf
		if int64(len(chunk)) > n {
			chunk = chunk[:n]
		}
		if _, err := os.Stdout.Write(chunk); err != nil {
			os.Exit(1)
		}
		n -= int64(len(chunk))
	}
}
