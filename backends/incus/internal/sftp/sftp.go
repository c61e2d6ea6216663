// Package sftp is a small client of the SFTP protocol, version 3
// (draft-ietf-secsh-filexfer-02) with OpenSSH's posix-rename and hardlink
// extensions: as much as berth needs to read and write an Incus instance's
// files over the connection rest.Client.SFTP opens.
package sftp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sync"
	"syscall"
	"time"
)

// Packet types.
const (
	fxpInit     = 1
	fxpVersion  = 2
	fxpOpen     = 3
	fxpClose    = 4
	fxpRead     = 5
	fxpWrite    = 6
	fxpLstat    = 7
	fxpSetstat  = 9
	fxpOpendir  = 11
	fxpReaddir  = 12
	fxpRemove   = 13
	fxpMkdir    = 14
	fxpRmdir    = 15
	fxpStat     = 17
	fxpReadlink = 19
	fxpSymlink  = 20
	fxpStatus   = 101
	fxpHandle   = 102
	fxpData     = 103
	fxpName     = 104
	fxpAttrs    = 105
	fxpExtended = 200
)

// Open flags.
const (
	fxfRead  = 0x01
	fxfWrite = 0x02
	fxfCreat = 0x08
	fxfExcl  = 0x20
)

// Attribute flags.
const (
	attrSize        = 0x01
	attrUIDGID      = 0x02
	attrPermissions = 0x04
	attrACModTime   = 0x08
	attrExtended    = 0x80000000
)

// Status codes.
const (
	fxOK            = 0
	fxEOF           = 1
	fxNoSuchFile    = 2
	fxPermDenied    = 3
	fxFailure       = 4
	fxOpUnsupported = 8
)

const (
	// maxData is the most data one read or write carries. Incus's server
	// takes writes of this size; it answers reads with at most 32 KiB.
	maxData = 128 * 1024
	// maxPacket bounds what the client accepts from the server; a
	// directory listing's packet is the largest it sends.
	maxPacket = 1 << 20
	// inflight is how many writes ReadFrom keeps on their way.
	inflight = 8
)

// StatusError is a failure the server reported, other than a missing file
// (fs.ErrNotExist), a refused permission (fs.ErrPermission) or the end of
// a file (io.EOF).
type StatusError struct {
	Code uint32
	Msg  string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("sftp: %q (status %d)", e.Msg, e.Code)
}

// Client is an SFTP session. It is safe for concurrent use.
//
// Goroutine: a reader hands each answer to the request it answers, until
// the connection fails or is closed; Close waits for it.
type Client struct {
	conn io.ReadWriteCloser
	wmu  sync.Mutex    // serialises writes to conn
	done chan struct{} // closed when the reader returned

	mu      sync.Mutex
	nextID  uint32
	pending map[uint32]chan packet // guarded by mu
	err     error                  // why the reader ended; guarded by mu
}

type packet struct {
	typ  byte
	data []byte // after the request id
}

// NewClient starts a session on conn, which it owns from then on.
func NewClient(conn io.ReadWriteCloser) (*Client, error) {
	c := &Client{conn: conn, done: make(chan struct{}), pending: map[uint32]chan packet{}}
	init := []byte{0, 0, 0, 5, fxpInit, 0, 0, 0, 3}
	if _, err := conn.Write(init); err != nil {
		return nil, fmt.Errorf("sftp: init: %w", err)
	}
	typ, _, err := readPacket(conn)
	if err != nil {
		return nil, fmt.Errorf("sftp: init: %w", err)
	}
	if typ != fxpVersion {
		return nil, fmt.Errorf("sftp: init: got packet type %d, want version", typ)
	}
	go c.read()
	return c, nil
}

// Close ends the session, fails the calls in flight and waits for the
// reader.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

func readPacket(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 1 || n > maxPacket {
		return 0, nil, fmt.Errorf("sftp: packet of %d bytes", n)
	}
	data := make([]byte, n-1)
	if _, err := io.ReadFull(r, data); err != nil {
		return 0, nil, err
	}
	return hdr[4], data, nil
}

func (c *Client) read() {
	defer close(c.done)
	var err error
	for {
		var typ byte
		var data []byte
		typ, data, err = readPacket(c.conn)
		if err != nil {
			break
		}
		if len(data) < 4 {
			err = fmt.Errorf("sftp: short packet of type %d", typ)
			break
		}
		id := binary.BigEndian.Uint32(data)
		c.mu.Lock()
		ch := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if ch != nil {
			ch <- packet{typ, data[4:]}
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = errors.New("sftp: connection lost")
	}
	c.mu.Lock()
	c.err = err
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	c.mu.Unlock()
	_ = c.conn.Close()
}

// send writes a request of type typ whose fields follow the id, and returns
// where its answer will come.
func (c *Client) send(typ byte, fields []byte) (<-chan packet, error) {
	ch := make(chan packet, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()

	b := make([]byte, 9, 9+len(fields))
	binary.BigEndian.PutUint32(b, uint32(5+len(fields)))
	b[4] = typ
	binary.BigEndian.PutUint32(b[5:], id)
	b = append(b, fields...)
	c.wmu.Lock()
	_, err := c.conn.Write(b)
	c.wmu.Unlock()
	if err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, err
	}
	return ch, nil
}

func (c *Client) await(ch <-chan packet) (packet, error) {
	p, ok := <-ch
	if !ok {
		c.mu.Lock()
		defer c.mu.Unlock()
		return packet{}, c.err
	}
	return p, nil
}

func (c *Client) call(typ byte, fields []byte) (packet, error) {
	ch, err := c.send(typ, fields)
	if err != nil {
		return packet{}, err
	}
	return c.await(ch)
}

// callStatus makes a call whose answer is a status.
func (c *Client) callStatus(typ byte, fields []byte) error {
	p, err := c.call(typ, fields)
	if err != nil {
		return err
	}
	return p.status()
}

// status is the error a status packet carries, or an error for any other
// packet.
func (p packet) status() error {
	if p.typ != fxpStatus {
		return fmt.Errorf("sftp: got packet type %d, want a status", p.typ)
	}
	code, rest, ok := u32(p.data)
	if !ok {
		return errors.New("sftp: short status")
	}
	msg, _, _ := str(rest)
	switch code {
	case fxOK:
		return nil
	case fxEOF:
		return io.EOF
	case fxNoSuchFile:
		return fs.ErrNotExist
	case fxPermDenied:
		return fs.ErrPermission
	}
	return &StatusError{Code: code, Msg: msg}
}

// want checks that p is of type typ, turning a status into its error.
func (p packet) want(typ byte) error {
	if p.typ == typ {
		return nil
	}
	if p.typ == fxpStatus {
		if err := p.status(); err != nil {
			return err
		}
	}
	return fmt.Errorf("sftp: got packet type %d, want %d", p.typ, typ)
}

func u32(b []byte) (uint32, []byte, bool) {
	if len(b) < 4 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint32(b), b[4:], true
}

func str(b []byte) (string, []byte, bool) {
	n, b, ok := u32(b)
	if !ok || uint32(len(b)) < n {
		return "", nil, false
	}
	return string(b[:n]), b[n:], true
}

func putU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func putU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
func putStr(b []byte, s string) []byte { return append(putU32(b, uint32(len(s))), s...) }

func strs(ss ...string) []byte {
	var b []byte
	for _, s := range ss {
		b = putStr(b, s)
	}
	return b
}

// FileStat is what a FileInfo's Sys returns.
type FileStat struct {
	Size  uint64
	Mode  uint32 // st_mode: type and permission bits
	UID   uint32
	GID   uint32
	Atime uint32
	Mtime uint32
}

// parseAttrs reads an ATTRS structure.
func parseAttrs(b []byte) (*FileStat, []byte, error) {
	short := errors.New("sftp: short attributes")
	flags, b, ok := u32(b)
	if !ok {
		return nil, nil, short
	}
	var st FileStat
	if flags&attrSize != 0 {
		if len(b) < 8 {
			return nil, nil, short
		}
		st.Size, b = binary.BigEndian.Uint64(b), b[8:]
	}
	if flags&attrUIDGID != 0 {
		if st.UID, b, ok = u32(b); ok {
			st.GID, b, ok = u32(b)
		}
		if !ok {
			return nil, nil, short
		}
	}
	if flags&attrPermissions != 0 {
		if st.Mode, b, ok = u32(b); !ok {
			return nil, nil, short
		}
	}
	if flags&attrACModTime != 0 {
		if st.Atime, b, ok = u32(b); ok {
			st.Mtime, b, ok = u32(b)
		}
		if !ok {
			return nil, nil, short
		}
	}
	if flags&attrExtended != 0 {
		var n uint32
		if n, b, ok = u32(b); !ok {
			return nil, nil, short
		}
		for range n {
			if _, b, ok = str(b); ok {
				_, b, ok = str(b)
			}
			if !ok {
				return nil, nil, short
			}
		}
	}
	return &st, b, nil
}

// fileInfo is an fs.FileInfo from the server's attributes.
type fileInfo struct {
	name string
	st   *FileStat
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return int64(fi.st.Size) }
func (fi fileInfo) Mode() fs.FileMode  { return toFileMode(fi.st.Mode) }
func (fi fileInfo) ModTime() time.Time { return time.Unix(int64(fi.st.Mtime), 0) }
func (fi fileInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi fileInfo) Sys() any           { return fi.st }

// toFileMode converts st_mode bits.
func toFileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFBLK:
		mode |= fs.ModeDevice
	case syscall.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&syscall.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&syscall.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&syscall.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// chmodBits converts a mode's permission and special bits to st_mode bits.
func chmodBits(mode fs.FileMode) uint32 {
	m := uint32(mode & fs.ModePerm)
	if mode&fs.ModeSetuid != 0 {
		m |= syscall.S_ISUID
	}
	if mode&fs.ModeSetgid != 0 {
		m |= syscall.S_ISGID
	}
	if mode&fs.ModeSticky != 0 {
		m |= syscall.S_ISVTX
	}
	return m
}

func (c *Client) stat(typ byte, p string) (fs.FileInfo, error) {
	pk, err := c.call(typ, strs(p))
	if err != nil {
		return nil, err
	}
	if err := pk.want(fxpAttrs); err != nil {
		return nil, err
	}
	st, _, err := parseAttrs(pk.data)
	if err != nil {
		return nil, err
	}
	return fileInfo{name: path.Base(p), st: st}, nil
}

// Stat returns p's attributes, following a symlink.
func (c *Client) Stat(p string) (fs.FileInfo, error) { return c.stat(fxpStat, p) }

// Lstat returns p's attributes, not following a symlink.
func (c *Client) Lstat(p string) (fs.FileInfo, error) { return c.stat(fxpLstat, p) }

// ReadDir lists a directory, without . and ..
func (c *Client) ReadDir(p string) ([]fs.FileInfo, error) {
	pk, err := c.call(fxpOpendir, strs(p))
	if err != nil {
		return nil, err
	}
	if err := pk.want(fxpHandle); err != nil {
		return nil, err
	}
	handle, _, _ := str(pk.data)
	defer func() { _ = c.callStatus(fxpClose, strs(handle)) }()
	var out []fs.FileInfo
	for {
		pk, err := c.call(fxpReaddir, strs(handle))
		if err != nil {
			return nil, err
		}
		if err := pk.want(fxpName); err != nil {
			if err == io.EOF {
				return out, nil
			}
			return nil, err
		}
		n, b, ok := u32(pk.data)
		if !ok {
			return nil, errors.New("sftp: short name list")
		}
		for range n {
			var name string
			if name, b, ok = str(b); ok {
				_, b, ok = str(b) // the long name
			}
			if !ok {
				return nil, errors.New("sftp: short name list")
			}
			var st *FileStat
			if st, b, err = parseAttrs(b); err != nil {
				return nil, err
			}
			if name != "." && name != ".." {
				out = append(out, fileInfo{name: name, st: st})
			}
		}
	}
}

// ReadLink returns a symlink's target.
func (c *Client) ReadLink(p string) (string, error) {
	pk, err := c.call(fxpReadlink, strs(p))
	if err != nil {
		return "", err
	}
	if err := pk.want(fxpName); err != nil {
		return "", err
	}
	n, b, ok := u32(pk.data)
	if !ok || n != 1 {
		return "", fmt.Errorf("sftp: readlink %s: %d names", p, n)
	}
	target, _, ok := str(b)
	if !ok {
		return "", errors.New("sftp: short name list")
	}
	return target, nil
}

func (c *Client) setstat(p string, flags uint32, fields []byte) error {
	b := putU32(strs(p), flags)
	return c.callStatus(fxpSetstat, append(b, fields...))
}

// Chmod sets p's permission and special bits.
func (c *Client) Chmod(p string, mode fs.FileMode) error {
	return c.setstat(p, attrPermissions, putU32(nil, chmodBits(mode)))
}

// Chown sets p's owner and group.
func (c *Client) Chown(p string, uid, gid int) error {
	return c.setstat(p, attrUIDGID, putU32(putU32(nil, uint32(uid)), uint32(gid)))
}

// Chtimes sets p's access and modification times, to the second.
func (c *Client) Chtimes(p string, atime, mtime time.Time) error {
	return c.setstat(p, attrACModTime, putU32(putU32(nil, uint32(atime.Unix())), uint32(mtime.Unix())))
}

// Mkdir makes a directory.
func (c *Client) Mkdir(p string) error {
	return c.callStatus(fxpMkdir, putU32(strs(p), 0))
}

// MkdirAll makes a directory and its missing parents; an existing
// directory is fine.
func (c *Client) MkdirAll(p string) error {
	if fi, err := c.Stat(p); err == nil {
		if fi.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: p, Err: syscall.ENOTDIR}
	}
	if parent := path.Dir(p); parent != p && parent != "/" && parent != "." {
		if err := c.MkdirAll(parent); err != nil {
			return err
		}
	}
	if err := c.Mkdir(p); err != nil {
		// It may have come meanwhile.
		if fi, serr := c.Lstat(p); serr == nil && fi.IsDir() {
			return nil
		}
		return err
	}
	return nil
}

// Symlink makes link point at target.
func (c *Client) Symlink(target, link string) error {
	// OpenSSH's order, which Incus's server follows too: target first,
	// although the draft puts the link first.
	return c.callStatus(fxpSymlink, strs(target, link))
}

// Link makes newname a hard link to oldname (hardlink@openssh.com).
func (c *Client) Link(oldname, newname string) error {
	return c.callStatus(fxpExtended, strs("hardlink@openssh.com", oldname, newname))
}

// PosixRename moves oldname over newname atomically
// (posix-rename@openssh.com).
func (c *Client) PosixRename(oldname, newname string) error {
	return c.callStatus(fxpExtended, strs("posix-rename@openssh.com", oldname, newname))
}

// Remove removes a file, or an empty directory.
func (c *Client) Remove(p string) error {
	errF := c.callStatus(fxpRemove, strs(p))
	if errF == nil {
		return nil
	}
	errD := c.callStatus(fxpRmdir, strs(p))
	if errD == nil {
		return nil
	}
	if fi, err := c.Lstat(p); err == nil && fi.IsDir() {
		return errD
	}
	return errF
}

// File is an open file.
type File struct {
	c      *Client
	handle string
	off    uint64
}

func (c *Client) open(p string, pflags uint32) (*File, error) {
	pk, err := c.call(fxpOpen, putU32(putU32(strs(p), pflags), 0))
	if err != nil {
		return nil, err
	}
	if err := pk.want(fxpHandle); err != nil {
		return nil, err
	}
	handle, _, ok := str(pk.data)
	if !ok {
		return nil, errors.New("sftp: short handle")
	}
	return &File{c: c, handle: handle}, nil
}

// Open opens a file for reading.
func (c *Client) Open(p string) (*File, error) { return c.open(p, fxfRead) }

// CreateExcl creates a new file for writing, failing if p exists.
func (c *Client) CreateExcl(p string) (*File, error) { return c.open(p, fxfWrite|fxfCreat|fxfExcl) }

// Close closes the file.
func (f *File) Close() error { return f.c.callStatus(fxpClose, strs(f.handle)) }

// Read reads from where the last read ended.
func (f *File) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := min(len(p), maxData)
	pk, err := f.c.call(fxpRead, putU32(putU64(strs(f.handle), f.off), uint32(n)))
	if err != nil {
		return 0, err
	}
	if err := pk.want(fxpData); err != nil {
		return 0, err
	}
	data, _, ok := str(pk.data)
	if !ok || len(data) > n {
		return 0, errors.New("sftp: bad data packet")
	}
	copy(p, data)
	f.off += uint64(len(data))
	return len(data), nil
}

func (f *File) writeReq(p []byte) []byte {
	b := putU64(strs(f.handle), f.off)
	return append(putU32(b, uint32(len(p))), p...)
}

// Write writes at where the last write ended.
func (f *File) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), maxData)
		if err := f.c.callStatus(fxpWrite, f.writeReq(p[:n])); err != nil {
			return written, err
		}
		f.off += uint64(n)
		written += n
		p = p[n:]
	}
	return written, nil
}

// ReadFrom writes what r holds, with several writes on their way at once.
func (f *File) ReadFrom(r io.Reader) (int64, error) {
	var queue []<-chan packet
	var total int64
	settle := func(keep int) error {
		for len(queue) > keep {
			pk, err := f.c.await(queue[0])
			queue = queue[1:]
			if err == nil {
				err = pk.status()
			}
			if err != nil {
				for _, ch := range queue {
					_, _ = f.c.await(ch)
				}
				queue = nil
				return err
			}
		}
		return nil
	}
	buf := make([]byte, maxData)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			ch, err := f.c.send(fxpWrite, f.writeReq(buf[:n]))
			if err != nil {
				_ = settle(0)
				return total, err
			}
			queue = append(queue, ch)
			f.off += uint64(n)
			total += int64(n)
			if err := settle(inflight - 1); err != nil {
				return total, err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return total, settle(0)
		}
		if rerr != nil {
			_ = settle(0)
			return total, rerr
		}
	}
}
