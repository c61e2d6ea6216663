// Command doorprobe is a static test fixture that plays a hostile process
// inside an instance and tries to pass for berth at the agent's door.
//
//	doorprobe dumpable
//	    print this process's PR_GET_DUMPABLE (the agent's children: 1)
//	doorprobe attack [-drop-ptrace] -socket NAME [-key HEX] [-control ARG]
//	    try everything below and print one JSON object of check → outcome,
//	    each "denied: why" or "ok: what"
//	doorprobe knock -dir DIR -socket NAME -key HEX
//	    answer the door's challenge as berth does and print the outcome
//	    (from the host, where it must succeed: the probe's control)
//
// -drop-ptrace first drops CAP_SYS_PTRACE from the bounding, inheritable
// and ambient sets and re-executes itself, so that root runs without it.
// -key is the instance's key, which a process in the instance cannot have:
// with it the probe stands for one that relays berth's own handshake.
// -control names a `sleep ARG` started by berth as the probe's user, whose
// environment the probe must be able to read (the agent's children are
// dumpable).
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	doorDir = "/.berth/door"
	runDir  = doorDir + "/run"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: doorprobe dumpable | attack [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "dumpable":
		d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println(d)
	case "attack":
		attack(os.Args[2:])
	case "knock":
		fs := flag.NewFlagSet("knock", flag.ExitOnError)
		dir := fs.String("dir", runDir, "")
		sock := fs.String("socket", "", "")
		keyHex := fs.String("key", "", "")
		_ = fs.Parse(os.Args[2:])
		key, _ := hex.DecodeString(*keyHex)
		fmt.Println(knock(filepath.Join(*dir, *sock), key))
	default:
		os.Exit(2)
	}
}

func attack(args []string) {
	fs := flag.NewFlagSet("attack", flag.ExitOnError)
	drop := fs.Bool("drop-ptrace", false, "")
	sock := fs.String("socket", "", "")
	keyHex := fs.String("key", "", "")
	control := fs.String("control", "", "")
	_ = fs.Parse(args)
	if *drop {
		dropPtrace()
	}
	key, _ := hex.DecodeString(*keyHex)
	r := map[string]string{}
	r["uid"] = strconv.Itoa(os.Getuid())
	r["cap_sys_ptrace"] = strconv.FormatBool(hasPtrace())
	r["list door dir"] = outcome(os.ReadDir(doorDir))
	r["list run dir"] = outcome(os.ReadDir(runDir))
	path := filepath.Join(runDir, *sock)
	r["connect"] = knock(path, nil)
	if key != nil {
		r["connect with the key"] = knock(path, key)
	}
	r["yamux without a handshake"] = yamuxExec(path)
	// A socket of the probe's own in the run directory, were berth to dial
	// it: the directory is out of reach, or berth's dial checks the owner.
	r["plant a socket"] = plant()
	agents := findProcs(func(argv []string) bool {
		return len(argv) >= 2 && strings.HasPrefix(argv[0], "/.berth/agent-") && (argv[1] == "serve" || argv[1] == "door")
	})
	if len(agents) == 0 {
		r["agents"] = "none found"
	}
	for _, pid := range agents {
		p := "/proc/" + strconv.Itoa(pid)
		r["agent environ "+strconv.Itoa(pid)] = outcome(os.ReadFile(p + "/environ"))
		r["agent mem "+strconv.Itoa(pid)] = readMem(p + "/mem")
		r["agent fd "+strconv.Itoa(pid)] = outcome(os.Readlink(p + "/fd/2"))
		r["agent ptrace "+strconv.Itoa(pid)] = ptrace(pid)
	}
	if *control != "" {
		ctl := findProcs(func(argv []string) bool {
			return len(argv) == 2 && filepath.Base(argv[0]) == "sleep" && argv[1] == *control
		})
		r["control"] = "none found"
		for _, pid := range ctl {
			env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
			if err != nil {
				r["control"] = "denied: " + err.Error()
			} else if bytes.Contains(env, []byte("DOOR_MARK=1")) {
				r["control"] = "ok: read its environment"
			}
		}
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

func outcome[T any](_ T, err error) string {
	if err != nil {
		return "denied: " + err.Error()
	}
	return "ok"
}

// dropPtrace re-executes the probe without CAP_SYS_PTRACE. Capability
// sets are per thread: the drop and the exec happen on one.
func dropPtrace() {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_CAPBSET_DROP, unix.CAP_SYS_PTRACE, 0, 0, 0); err != nil {
		fail("drop from the bounding set: %v", err)
	}
	_ = unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		fail("capget: %v", err)
	}
	data[0].Inheritable &^= 1 << unix.CAP_SYS_PTRACE
	data[0].Effective &^= 1 << unix.CAP_SYS_PTRACE
	data[0].Permitted &^= 1 << unix.CAP_SYS_PTRACE
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		fail("capset: %v", err)
	}
	var args []string
	for _, a := range os.Args {
		if a != "-drop-ptrace" {
			args = append(args, a)
		}
	}
	self, _ := os.Executable()
	fail("exec: %v", syscall.Exec(self, args, os.Environ()))
}

func hasPtrace() bool {
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			eff, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return eff&(1<<unix.CAP_SYS_PTRACE) != 0
		}
	}
	return false
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "doorprobe: "+format+"\n", a...)
	os.Exit(1)
}

func frame(typ byte, p []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(p)))
	return append(b, p...)
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > 1<<16 {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return hdr[0], p, err
}

func proof(key []byte, label string, na, nc []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write(na)
	m.Write(nc)
	return m.Sum(nil)
}

// knock connects to the door and, given the key, answers its challenge as
// berth would. "ok" means the agent admitted the probe.
func knock(path string, key []byte) string {
	c, err := net.DialTimeout("unix", path, 3*time.Second)
	if err != nil {
		return "denied: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	typ, p, err := readFrame(c)
	if err != nil {
		return "denied: no challenge: " + err.Error()
	}
	if typ != 'n' || len(p) != 33 {
		return fmt.Sprintf("denied: odd challenge %q", typ)
	}
	if key == nil {
		return "challenged, no key to answer with"
	}
	na, nc := p[1:], make([]byte, 32)
	_, _ = rand.Read(nc)
	if _, err := c.Write(frame('p', append(nc, proof(key, "berth-door/1 berth", na, nc)...))); err != nil {
		return "denied: " + err.Error()
	}
	typ, p, err = readFrame(c)
	if err != nil {
		return "denied: no proof back: " + err.Error()
	}
	if typ == 'p' && bytes.Equal(p, proof(key, "berth-door/1 agent", na, nc)) {
		return "ok: admitted"
	}
	return "denied: odd proof"
}

// yamuxExec speaks yamux at the door at once and asks for a process and a
// tunnel.
func yamuxExec(path string) string {
	c, err := net.DialTimeout("unix", path, 3*time.Second)
	if err != nil {
		return "denied: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	var msg bytes.Buffer
	for i, req := range []string{
		`{"op":"exec","argv":["touch","/tmp/door-pwned"],"user":"0"}`,
		`{"op":"listen","addr":"127.0.0.1:0"}`,
	} {
		body := frame('q', []byte(req))
		// yamux: window update with SYN opens stream 2i+1, then data.
		id := uint32(2*i + 1)
		msg.Write(yamuxHeader(1, 1, id, 0))
		msg.Write(yamuxHeader(0, 0, id, uint32(len(body))))
		msg.Write(body)
	}
	if _, err := c.Write(msg.Bytes()); err != nil {
		return "denied: " + err.Error()
	}
	got, err := io.ReadAll(c)
	// The agent speaks first with a challenge, and shuts the door on what
	// is not an answer to it.
	if bytes.Contains(got, []byte(`"pid"`)) || bytes.Contains(got, []byte(`"port"`)) {
		return "ok: the agent answered " + strconv.Quote(string(got))
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return "denied: " + err.Error()
	}
	return fmt.Sprintf("denied: closed after %d bytes", len(got))
}

func yamuxHeader(typ, flags uint16, id, length uint32) []byte {
	h := make([]byte, 12)
	h[0] = 0
	h[1] = byte(typ)
	binary.BigEndian.PutUint16(h[2:], flags)
	binary.BigEndian.PutUint32(h[4:], id)
	binary.BigEndian.PutUint32(h[8:], length)
	return h
}

func plant() string {
	p := filepath.Join(runDir, "probe.sock")
	ln, err := net.Listen("unix", p)
	if err != nil {
		return "denied: " + err.Error()
	}
	ln.Close()
	os.Remove(p)
	return "ok: made " + p
}

func readMem(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "denied: " + err.Error()
	}
	defer f.Close()
	buf := make([]byte, 16)
	// Any mapped address will do: the agent is a static binary at 0x400000.
	if _, err := f.ReadAt(buf, 0x400000); err != nil {
		return "denied: " + err.Error()
	}
	return "ok: read memory"
}

func ptrace(pid int) string {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.PtraceAttach(pid); err != nil {
		return "denied: " + err.Error()
	}
	var ws unix.WaitStatus
	_, _ = unix.Wait4(pid, &ws, unix.WALL, nil)
	_ = unix.PtraceDetach(pid)
	return "ok: attached"
}

// findProcs lists the pids whose argv match.
func findProcs(match func([]string) bool) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(raw) == 0 {
			continue
		}
		argv := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
		if match(argv) {
			pids = append(pids, pid)
		}
	}
	return pids
}
