package tools

import (
	"fmt"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"
)

// DebugRequest says which debug server to start in the container.
type DebugRequest struct {
	Adapter string // "debugpy", "delve" or "custom"
	// Program is a container path, already mapped by the caller; for delve
	// a Go package directory or file. May be "".
	Program string
	Module  string // python -m module
	Args    []string
	// Command is a custom debug server's argv; "{port}" in any element is
	// replaced by Port.
	Command []string
	Port    int // the container port the server listens on, on 127.0.0.1
	// ConnectBack is "127.0.0.1:PORT" inside the container: the debuggee
	// connects out to it instead of listening.
	ConnectBack string
	// Test debugs tests rather than a program: pytest under debugpy, or
	// "dlv test" of one Go package.
	Test bool
	// Tests are the test ids to debug (as berth/test takes them): pytest
	// node ids, or Go "importpath.TestName" ids of one package; with none
	// every test runs (Program names delve's package then).
	Tests []string
}

// PathMapping pairs a host directory with where the container sees it.
type PathMapping struct{ Host, Container string }

// DebugServerArgv returns the argv that starts the debug server on
// 127.0.0.1:Port in the container, or that connects out to ConnectBack.
//
//	debugpy  python3 -m debugpy --listen 127.0.0.1:PORT --wait-for-client <program | -m module> args...
//	         python3 -m debugpy --connect HOST:PORT <program | -m module> args...
//	delve    dlv debug <program> --headless --listen=127.0.0.1:PORT --api-version=2 [-- args...]
//	         dlv dap --listen=127.0.0.1:PORT        (no program: the client's launch brings it)
//	         dlv dap --client-addr=HOST:PORT        (ConnectBack: likewise)
//	custom   Command, with {port} replaced
//
// With Test:
//
//	debugpy  python3 -m debugpy --listen 127.0.0.1:PORT --wait-for-client -m pytest args... tests...
//	delve    dlv test <package> --headless --listen=127.0.0.1:PORT --api-version=2 [-- -test.run REGEX args...]
//
// where delve's package is Program, else the one package of Tests, and
// REGEX selects Tests as berth/test does (GoRunSelection).
//
// delve runs headless with the program when there is one because only that
// server accepts the remote attach AttachConfig describes; "dlv dap" serves
// launch requests only. Errors wrap ErrBadRequest.
func DebugServerArgv(r DebugRequest) ([]string, error) {
	if r.Test {
		return debugTestArgv(r)
	}
	switch r.Adapter {
	case "debugpy":
		var target []string
		switch {
		case r.Program != "" && r.Module != "":
			return nil, fmt.Errorf("debugpy: %w: both a program and a module", ErrBadRequest)
		case r.Program != "":
			target = []string{r.Program}
		case r.Module != "":
			target = []string{"-m", r.Module}
		default:
			return nil, fmt.Errorf("debugpy: %w: no program or module", ErrBadRequest)
		}
		var argv []string
		if r.ConnectBack != "" {
			if err := checkHostPort(r.ConnectBack); err != nil {
				return nil, fmt.Errorf("debugpy: %w", err)
			}
			argv = []string{"python3", "-m", "debugpy", "--connect", r.ConnectBack}
		} else {
			if err := checkPort(r.Port); err != nil {
				return nil, fmt.Errorf("debugpy: %w", err)
			}
			argv = []string{"python3", "-m", "debugpy", "--listen", listenAddr(r.Port), "--wait-for-client"}
		}
		argv = append(argv, target...)
		return append(argv, r.Args...), nil

	case "delve":
		if r.Module != "" {
			return nil, fmt.Errorf("delve: %w: a module is a python thing; give a program", ErrBadRequest)
		}
		if r.ConnectBack != "" || r.Program == "" {
			if len(r.Args) > 0 {
				return nil, fmt.Errorf("delve: %w: args without a program to start here; the client's launch request carries them", ErrBadRequest)
			}
		}
		if r.ConnectBack != "" {
			if err := checkHostPort(r.ConnectBack); err != nil {
				return nil, fmt.Errorf("delve: %w", err)
			}
			return []string{"dlv", "dap", "--client-addr=" + r.ConnectBack}, nil
		}
		if err := checkPort(r.Port); err != nil {
			return nil, fmt.Errorf("delve: %w", err)
		}
		if r.Program == "" {
			return []string{"dlv", "dap", "--listen=" + listenAddr(r.Port)}, nil
		}
		argv := []string{"dlv", "debug", r.Program, "--headless", "--listen=" + listenAddr(r.Port), "--api-version=2"}
		if len(r.Args) > 0 {
			argv = append(append(argv, "--"), r.Args...)
		}
		return argv, nil

	case "custom":
		if len(r.Command) == 0 || r.Command[0] == "" {
			return nil, fmt.Errorf("custom: %w: empty command", ErrBadRequest)
		}
		argv := make([]string, len(r.Command))
		for i, a := range r.Command {
			if strings.Contains(a, "{port}") {
				if err := checkPort(r.Port); err != nil {
					return nil, fmt.Errorf("custom: %w", err)
				}
				a = strings.ReplaceAll(a, "{port}", strconv.Itoa(r.Port))
			}
			argv[i] = a
		}
		return argv, nil
	}
	return nil, fmt.Errorf("%w: unknown adapter %q (want debugpy, delve or custom)", ErrBadRequest, r.Adapter)
}

// debugTestArgv is DebugServerArgv's Test case.
func debugTestArgv(r DebugRequest) ([]string, error) {
	switch r.Adapter {
	case "debugpy":
		if r.Program != "" || r.Module != "" {
			return nil, fmt.Errorf("debugpy: %w: a test run is pytest's; give tests, not a program or module", ErrBadRequest)
		}
		t := r
		t.Test, t.Module = false, "pytest"
		t.Args = append(append([]string(nil), r.Args...), r.Tests...)
		return DebugServerArgv(t)
	case "delve":
		if r.Module != "" || r.ConnectBack != "" {
			return nil, fmt.Errorf("delve: %w: a test run takes a package and tests, and listens", ErrBadRequest)
		}
		if err := checkPort(r.Port); err != nil {
			return nil, fmt.Errorf("delve: %w", err)
		}
		pkg, run := r.Program, ""
		if len(r.Tests) > 0 {
			pkgs, sel, err := GoRunSelection(r.Tests)
			if err != nil {
				return nil, fmt.Errorf("delve: %w", err)
			}
			if len(pkgs) != 1 {
				return nil, fmt.Errorf("delve: %w: tests of %d packages; dlv test debugs one", ErrBadRequest, len(pkgs))
			}
			if pkg == "" {
				pkg = pkgs[0]
			}
			run = sel
		}
		if pkg == "" {
			return nil, fmt.Errorf("delve: %w: no tests and no program (the package to test)", ErrBadRequest)
		}
		argv := []string{"dlv", "test", pkg, "--headless", "--listen=" + listenAddr(r.Port), "--api-version=2"}
		var targs []string
		if run != "" {
			targs = append(targs, "-test.run", run)
		}
		targs = append(targs, r.Args...)
		if len(targs) > 0 {
			argv = append(append(argv, "--"), targs...)
		}
		return argv, nil
	}
	return nil, fmt.Errorf("%w: adapter %q cannot debug tests (want debugpy or delve)", ErrBadRequest, r.Adapter)
}

func listenAddr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func checkPort(p int) error {
	if p <= 0 || p > 65535 {
		return fmt.Errorf("%w: port %d out of range", ErrBadRequest, p)
	}
	return nil
}

func checkHostPort(hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil || host == "" {
		return fmt.Errorf("%w: connect-back address %q is not host:port", ErrBadRequest, hp)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("%w: connect-back address %q is not host:port", ErrBadRequest, hp)
	}
	return checkPort(n)
}

// AttachConfig returns the DAP configuration a host-side client (VS Code's
// launch.json, nvim-dap) uses to reach the server DebugServerArgv started.
// host and port are the host end of the tunnel ("" host means 127.0.0.1),
// and mappings are sorted longest host path first so nested mounts win.
//
//	debugpy  {"type":"debugpy","request":"attach","name":N,"connect":{"host","port"},
//	          "pathMappings":[{"localRoot","remoteRoot"}...],"justMyCode":B}
//	         With ConnectBack the client listens for the debuggee: "listen"
//	         replaces "connect".
//	delve    {"type":"go","request":"attach","mode":"remote","name":N,"host","port",
//	          "substitutePath":[{"from":host,"to":container}...],"program":P}
//	         With no program (a "dlv dap" server) it is a launch of the
//	         package in cwd instead: "request":"launch","mode":"debug","program":cwd.
//	custom   {"type":"custom","request":"attach","name":N,"host","port"}
//
// A delve test run (Test) attaches remotely too, its program the package.
// N is "berth: " and the program's base name, the module or the adapter; for
// tests, the one test's name or "tests". A
// non-empty cwd (a container path) is added as "cwd".
func AttachConfig(r DebugRequest, host string, port int, mappings []PathMapping, cwd string, justMyCode bool) map[string]any {
	if host == "" {
		host = "127.0.0.1"
	}
	label := r.Adapter
	if r.Test && r.Adapter == "delve" && r.Program == "" && len(r.Tests) > 0 {
		r.Program, _ = SplitGoTestID(r.Tests[0]) // the one package dlv test debugs
	}
	switch {
	case r.Test && len(r.Tests) == 1:
		label = r.Tests[0][max(strings.LastIndex(r.Tests[0], "::")+2, strings.LastIndex(r.Tests[0], ".")+1):]
	case r.Test:
		label = "tests"
	case r.Program != "":
		label = path.Base(r.Program)
	case r.Module != "":
		label = r.Module
	}
	ms := append([]PathMapping(nil), mappings...)
	sort.SliceStable(ms, func(i, j int) bool { return len(ms[i].Host) > len(ms[j].Host) })

	cfg := map[string]any{"name": "berth: " + label, "request": "attach"}
	switch r.Adapter {
	case "debugpy":
		cfg["type"] = "debugpy"
		addr := map[string]any{"host": host, "port": port}
		if r.ConnectBack != "" {
			cfg["listen"] = addr
		} else {
			cfg["connect"] = addr
		}
		pm := make([]map[string]string, 0, len(ms))
		for _, m := range ms {
			pm = append(pm, map[string]string{"localRoot": m.Host, "remoteRoot": m.Container})
		}
		cfg["pathMappings"] = pm
		cfg["justMyCode"] = justMyCode
	case "delve":
		cfg["type"] = "go"
		cfg["host"], cfg["port"] = host, port
		sp := make([]map[string]string, 0, len(ms))
		for _, m := range ms {
			sp = append(sp, map[string]string{"from": m.Host, "to": m.Container})
		}
		cfg["substitutePath"] = sp
		if r.Program != "" && r.ConnectBack == "" {
			cfg["mode"], cfg["program"] = "remote", r.Program
		} else {
			prog := r.Program
			if prog == "" {
				prog = cwd
			}
			if prog == "" {
				prog = "."
			}
			cfg["request"], cfg["mode"], cfg["program"] = "launch", "debug", prog
		}
	default:
		cfg["type"] = "custom"
		cfg["host"], cfg["port"] = host, port
	}
	if cwd != "" {
		cfg["cwd"] = cwd
	}
	return cfg
}
