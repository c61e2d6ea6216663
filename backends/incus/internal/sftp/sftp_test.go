package sftp

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAttrs(t *testing.T) {
	all := putU32(nil, attrSize|attrUIDGID|attrPermissions|attrACModTime|attrExtended)
	all = putU64(all, 42)
	all = putU32(putU32(all, 1000), 100)
	all = putU32(all, 0o100755)
	all = putU32(putU32(all, 7), 9)
	all = putU32(all, 1)
	all = append(all, strs("k", "v")...)
	all = append(all, "rest"...)
	tests := []struct {
		name     string
		in       []byte
		want     *FileStat
		wantRest string
		wantErr  bool
	}{
		{"every field", all, &FileStat{Size: 42, UID: 1000, GID: 100, Mode: 0o100755, Atime: 7, Mtime: 9}, "rest", false},
		{"none", putU32(nil, 0), &FileStat{}, "", false},
		{"permissions only", putU32(putU32(nil, attrPermissions), 0o40700), &FileStat{Mode: 0o40700}, "", false},
		{"short", putU32(nil, attrSize), nil, "", true},
		{"empty", nil, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rest, err := parseAttrs(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" || string(rest) != tt.wantRest {
				t.Errorf("parseAttrs (-want +got):\n%s\nrest %q", diff, rest)
			}
		})
	}
}

func TestModes(t *testing.T) {
	tests := []struct {
		bits uint32
		mode fs.FileMode
	}{
		{0o100644, 0o644},
		{0o40755, fs.ModeDir | 0o755},
		{0o120777, fs.ModeSymlink | 0o777},
		{0o104755, fs.ModeSetuid | 0o755},
		{0o42775, fs.ModeDir | fs.ModeSetgid | 0o775},
		{0o41777, fs.ModeDir | fs.ModeSticky | 0o777},
		{0o10644, fs.ModeNamedPipe | 0o644},
		{0o20600, fs.ModeDevice | fs.ModeCharDevice | 0o600},
		{0o140755, fs.ModeSocket | 0o755},
	}
	for _, tt := range tests {
		if got := toFileMode(tt.bits); got != tt.mode {
			t.Errorf("toFileMode(%o) = %v, want %v", tt.bits, got, tt.mode)
		}
		if got, want := chmodBits(tt.mode), tt.bits&0o7777; got != want {
			t.Errorf("chmodBits(%v) = %o, want %o", tt.mode, got, want)
		}
	}
}

func TestStatus(t *testing.T) {
	status := func(code uint32, msg string) packet {
		return packet{typ: fxpStatus, data: append(putU32(nil, code), strs(msg, "")...)}
	}
	tests := []struct {
		name string
		p    packet
		want error
	}{
		{"ok", status(fxOK, ""), nil},
		{"eof", status(fxEOF, ""), io.EOF},
		{"missing", status(fxNoSuchFile, "no such file"), fs.ErrNotExist},
		{"denied", status(fxPermDenied, ""), fs.ErrPermission},
	}
	for _, tt := range tests {
		if got := tt.p.status(); !errors.Is(got, tt.want) || (tt.want == nil) != (got == nil) {
			t.Errorf("%s: status() = %v, want %v", tt.name, got, tt.want)
		}
	}
	var se *StatusError
	if err := status(fxFailure, "text file busy").status(); !errors.As(err, &se) || se.Code != fxFailure || se.Msg != "text file busy" {
		t.Errorf("failure: status() = %v", err)
	}
	if err := (packet{typ: fxpHandle}).status(); err == nil {
		t.Error("a handle packet is no status")
	}
}

// A server that dies fails the calls in flight, and Close returns.
func TestConnectionLost(t *testing.T) {
	cli, srv := net.Pipe()
	go func() {
		if _, _, err := readPacket(srv); err != nil { // init
			return
		}
		_, _ = srv.Write(append(putU32(nil, 5), fxpVersion, 0, 0, 0, 3))
		_, _, _ = readPacket(srv) // the stat, left unanswered
		srv.Close()
	}()
	c, err := NewClient(cli)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat("/"); err == nil {
		t.Error("Stat on a lost connection: no error")
	}
	if _, err := c.Lstat("/"); err == nil {
		t.Error("Lstat after the loss: no error")
	}
	c.Close()
}
