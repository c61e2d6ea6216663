package main

import (
	"archive/tar"
	"io"
)

type tarWriter struct{ tw *tar.Writer }

func newTar(w io.Writer) *tarWriter { return &tarWriter{tar.NewWriter(w)} }

func (t *tarWriter) add(name string, data []byte) {
	t.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data))})
	t.tw.Write(data)
}

func (t *tarWriter) close() { t.tw.Close() }
