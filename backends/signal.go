package backends

import (
	"fmt"
	"strconv"
	"strings"
)

// Instances are Linux whatever the host is, so berth carries Linux's signal
// table rather than using the host's syscall package.
var signalNames = map[int]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP",
	6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1",
	11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM",
	16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP",
	21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
	26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR",
	31: "SIGSYS",
}

// Signal numbers berth uses itself.
const (
	SIGINT  = 2
	SIGKILL = 9
	SIGTERM = 15
)

// ParseSignal accepts "SIGTERM", "term", "TERM" or "15" and returns the Linux
// signal number.
func ParseSignal(s string) (int, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("signal %d out of range 1-64", n)
		}
		return n, nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	for n, known := range signalNames {
		if known == name {
			return n, nil
		}
	}
	return 0, fmt.Errorf("unknown signal %q (use a name like TERM or SIGKILL, or a number)", s)
}

// SignalName returns the name of a Linux signal, or "SIG<n>" when unnamed.
func SignalName(n int) string {
	if name, ok := signalNames[n]; ok {
		return name
	}
	return "SIG" + strconv.Itoa(n)
}

// StatusFromCode interprets a shell-style exit code: codes 129-192 mean
// death by signal code-128.
func StatusFromCode(code int) ExitStatus {
	st := ExitStatus{Code: code}
	if code > 128 && code <= 128+64 {
		st.Signal = SignalName(code - 128)
	}
	return st
}
