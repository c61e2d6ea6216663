package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
)

// The instance's service, on an engine whose instances boot their own init
// (Incus): the agent starts the configuration's command itself, in a
// session of its own, owned by no connection, so that it outlives every
// berth and every agent; the instance's init reaps it once the agent is
// gone. A record in the instance names the process, and a lock serialises
// agents, so that racing berths start it once per instance start: a
// record whose process still lives (same pid, same start time) is the
// service, and nothing new starts.

// serviceDir holds the service's record (service.json), the lock that
// serialises the agents that read and write it (service.lock), and its
// log (ServiceLog). Tests move it.
var serviceDir = Dir

// maxServiceLog is the size past which the log is moved aside to
// ServiceLog.1 when the service starts again.
const maxServiceLog = 8 << 20

type serviceRecord struct {
	PID   int      `json:"pid"`
	Start uint64   `json:"start"` // the process's start time, in clock ticks since boot
	Argv  []string `json:"argv"`
}

// service starts req's command as the instance's service unless the one
// started before still runs, and replies with its pid.
func (c *conn) service(st *yamux.Stream, req request) {
	pid, running, kind, err := startService(req)
	if err != nil {
		_ = writeJSON(st, frameReply, reply{Error: err.Error(), ErrKind: kind})
		return
	}
	if !running {
		c.s.log.Info("service started", "pid", pid, "argv", req.Argv)
	}
	_ = writeJSON(st, frameReply, reply{PID: pid, Running: running})
}

func startService(req request) (pid int, running bool, kind string, err error) {
	var (
		lockPath  = filepath.Join(serviceDir, "service.lock")
		statePath = filepath.Join(serviceDir, "service.json")
		logPath   = filepath.Join(serviceDir, filepath.Base(ServiceLog))
	)
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return 0, false, "", fmt.Errorf("service: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return 0, false, "", fmt.Errorf("service: lock: %w", err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if rec, ok := readServiceRecord(statePath); ok && processAlive(rec.PID, rec.Start) {
		return rec.PID, true, "", nil
	}
	cmd, kind, err := prepare(req, &syscall.SysProcAttr{Setsid: true})
	if err != nil {
		return 0, false, kind, err
	}
	if fi, err := os.Stat(logPath); err == nil && fi.Size() > maxServiceLog {
		_ = os.Rename(logPath, logPath+".1")
	}
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_CLOEXEC, 0o640)
	if err != nil {
		return 0, false, "", fmt.Errorf("service: log: %w", err)
	}
	defer log.Close()
	fmt.Fprintf(log, "berth: %s: starting the service: %q\n", time.Now().UTC().Format(time.RFC3339), req.Argv)
	cmd.Stdout, cmd.Stderr = log, log // stdin is /dev/null
	if err := cmd.Start(); err != nil {
		kind, err := startErr(cmd, err)
		return 0, false, kind, err
	}
	pid = cmd.Process.Pid
	// Not waited for: it outlives the agent. processAlive reaps it while
	// the agent lives, the instance's init after.
	_ = cmd.Process.Release()
	start, _ := procStart(pid)
	b, _ := json.Marshal(serviceRecord{PID: pid, Start: start, Argv: req.Argv})
	tmp := statePath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		err = os.Rename(tmp, statePath)
	}
	if err != nil {
		// Started all the same; a later berth may start it again.
		fmt.Fprintf(log, "berth: cannot record the service: %v\n", err)
	}
	return pid, false, "", nil
}

func readServiceRecord(path string) (serviceRecord, bool) {
	var rec serviceRecord
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.PID <= 0 {
		return rec, false
	}
	return rec, true
}

// procStat reads a process's state and start time from /proc/PID/stat.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// "pid (comm) state ppid …": comm may hold anything, so split after
	// its last parenthesis. starttime is field 22, the 20th after comm.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, errors.New("malformed stat")
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0][0], start, err
}

func procStart(pid int) (uint64, error) {
	_, start, err := procStat(pid)
	return start, err
}

// processAlive reports whether pid is still the process that started at
// start (not a later one that reuses its pid), and reaps it if it is
// this agent's child that exited.
func processAlive(pid int, start uint64) bool {
	state, got, err := procStat(pid)
	if err != nil || got != start {
		return false
	}
	if state == 'Z' {
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		return false
	}
	return state != 'X'
}

// processes counts the live processes that connections started, berth's
// helpers left out: the processes berth's users run in the instance,
// through any berth. Each counts until it exits, whatever children it
// leaves in its group. A leader's pid is not reused while its group lives.
func (s *Server) processes() int {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	n := 0
	for _, c := range conns {
		c.mu.Lock()
		for pg, helper := range c.groups {
			if !helper && syscall.Kill(pg, 0) == nil {
				n++
			}
		}
		c.mu.Unlock()
	}
	return n
}
