package memory_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/memory"
)

const ws = "/home/me/project"

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func spec() backends.Spec {
	return backends.Spec{
		Workspace: ws,
		Name:      "berth-project",
		Image:     "img:1",
		Workdir:   "/workspaces/project",
		Mounts:    []backends.Mount{{Host: ws, Container: "/workspaces/project"}},
		Labels:    map[string]string{"extra": "yes"},
		Env:       []string{"FROM_SPEC=1"},
	}
}

// up returns a backend with one running instance for ws.
func up(t *testing.T, opts memory.Options) (*memory.Backend, backends.Instance) {
	t.Helper()
	b := memory.New(opts)
	inst, created, err := b.Ensure(ctxFor(t), spec())
	if err != nil || !created {
		t.Fatalf("Ensure: created=%v err=%v", created, err)
	}
	return b, inst
}

type result struct {
	Code           int
	Signal         string
	Stdout, Stderr string
}

func run(t *testing.T, b *memory.Backend, id string, es backends.ExecSpec) result {
	t.Helper()
	var out, errb bytes.Buffer
	es.Stdout, es.Stderr = &out, &errb
	p, err := b.Exec(ctxFor(t), id, es)
	if err != nil {
		t.Fatalf("Exec %q: %v", es.Argv, err)
	}
	st, err := p.Wait(ctxFor(t))
	if err != nil {
		t.Fatalf("Wait %q: %v", es.Argv, err)
	}
	return result{st.Code, st.Signal, out.String(), errb.String()}
}

func shell(script string) backends.ExecSpec {
	return backends.ExecSpec{Argv: []string{"sh", "-c", script}}
}

func TestShell(t *testing.T) {
	b, inst := up(t, memory.Options{})
	tests := []struct {
		name   string
		spec   backends.ExecSpec
		want   result
		script string
	}{
		{name: "exit code", spec: shell("exit 3"), want: result{Code: 3}},
		{name: "exit without code keeps $?", spec: shell("false; exit"), want: result{Code: 1}},
		{name: "sequence", spec: shell("echo a; echo b"), want: result{Stdout: "a\nb\n"}},
		{name: "newlines and comments", spec: shell("echo a # not this\n\n# nor this\necho b\n"), want: result{Stdout: "a\nb\n"}},
		{name: "and", spec: shell("true && echo yes; false && echo no"), want: result{Code: 1, Stdout: "yes\n"}},
		{name: "or", spec: shell("false || echo yes; true || echo no"), want: result{Stdout: "yes\n"}},
		{name: "and-or left to right", spec: shell("false && echo a || echo b"), want: result{Stdout: "b\n"}},
		{name: "line continues after &&", spec: shell("true &&\necho yes"), want: result{Stdout: "yes\n"}},
		{name: "status", spec: shell("false; echo $?; sh -c 'exit 4'; echo $?"), want: result{Stdout: "1\n4\n"}},
		{name: "stderr", spec: shell("echo err >&2; echo out 2>/dev/null"), want: result{Stdout: "out\n", Stderr: "err\n"}},
		{name: "stderr to stdout", spec: shell("sh -c 'echo e >&2' 2>&1"), want: result{Stdout: "e\n"}},
		{name: "quoting", spec: shell(`echo 'a  $X' "b  $X" c\ \ d`), want: result{Stdout: "a  $X b   c  d\n"}},
		{name: "escapes in double quotes", spec: shell(`echo "\"\$\\"`), want: result{Stdout: "\"$\\\n"}},
		{name: "variables", spec: backends.ExecSpec{Argv: []string{"sh", "-c", `echo $G ${G}! "$G"`}, Env: []string{"G=hi there"}}, want: result{Stdout: "hi there hi there! hi there\n"}},
		{name: "unquoted expansion splits", spec: backends.ExecSpec{Argv: []string{"sh", "-c", `printf '[%s]' $G; printf '[%s]' "$G"`}, Env: []string{"G= a  b "}}, want: result{Stdout: "[a][b][ a  b ]"}},
		{name: "defaults", spec: shell(`E=; echo ${UNSET:-d1} ${E:-d2} ${E-d3}.`), want: result{Stdout: "d1 d2 .\n"}},
		{name: "assignment", spec: shell("X=1; Y=$X$X; echo $Y"), want: result{Stdout: "11\n"}},
		{name: "assignment for one command", spec: shell(`X=1 sh -c 'echo $X'; echo "[$X]"`), want: result{Stdout: "1\n[]\n"}},
		{name: "export", spec: shell(`export X=2; sh -c 'echo $X'`), want: result{Stdout: "2\n"}},
		{name: "positional", spec: backends.ExecSpec{Argv: []string{"sh", "-c", `echo $0 $1 $# "$@"`, "name", "a", "b"}}, want: result{Stdout: "name a 2 a b\n"}},
		{name: "cd", spec: shell("cd /tmp && pwd; cd /nope"), want: result{Code: 2, Stdout: "/tmp\n", Stderr: "sh: cd: can't cd to /nope: No such file or directory\n"}},
		{name: "files", spec: shell("echo one > /tmp/f; echo two >> /tmp/f; cat < /tmp/f; cat /tmp/f | cat"), want: result{Stdout: "one\ntwo\none\ntwo\n"}},
		{name: "redirect to a missing dir", spec: shell("echo x > /nope/f"), want: result{Code: 1, Stderr: "sh: can't create /nope/f: No such file or directory\n"}},
		{name: "pipeline", spec: shell("echo hello | cat | cat"), want: result{Stdout: "hello\n"}},
		{name: "pipeline status is the last's", spec: shell("true | false"), want: result{Code: 1}},
		{name: "background and wait", spec: shell("echo a & wait; echo b"), want: result{Stdout: "a\nb\n"}},
		{name: "test", spec: shell(`test -d /tmp && [ -n "x" ] && [ 2 -lt 10 ] && ! test -f /tmp && echo ok`), want: result{Stdout: "ok\n"}},
		{name: "errexit", spec: shell("set -e; echo a; false; echo b"), want: result{Code: 1, Stdout: "a\n"}},
		{name: "errexit spares conditions", spec: backends.ExecSpec{Argv: []string{"sh", "-ec", "false || true; false && true; echo c"}}, want: result{Stdout: "c\n"}},
		{name: "globs stay literal", spec: shell("echo *.go"), want: result{Stdout: "*.go\n"}},
		{name: "command not found", spec: shell("nope; echo $?"), want: result{Stdout: "127\n", Stderr: "sh: nope: not found\n"}},
		{name: "script on stdin", spec: backends.ExecSpec{Argv: []string{"sh"}, Stdin: strings.NewReader("echo from stdin\nexit 5\n")}, want: result{Code: 5, Stdout: "from stdin\n"}},
		{name: "unsupported syntax", spec: shell("if true; then echo x; fi"), want: result{Code: 2, Stderr: "sh: syntax error: \"if\" is not supported\n"}},
		{name: "no command substitution", spec: shell("echo $(pwd)"), want: result{Code: 2, Stderr: "sh: syntax error: command substitution is not supported\n"}},
		{name: "unterminated quote", spec: shell("echo 'x"), want: result{Code: 2, Stderr: "sh: syntax error: unterminated '\n"}},
		{name: "dangling operator", spec: shell("echo x &&"), want: result{Code: 2, Stderr: "sh: syntax error: unexpected end of script\n"}},
		{name: "exit code above 128 reads as a signal", spec: shell("exit 130"), want: result{Code: 130, Signal: "SIGINT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, b, inst.ID, tt.spec)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%q (-want +got):\n%s", tt.spec.Argv, diff)
			}
		})
	}
}

func TestCommands(t *testing.T) {
	b, inst := up(t, memory.Options{Users: map[string]int{"root": 0, "dev": 1000}})
	fsys, err := b.FS(ws)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.WriteFile("/tmp/in.txt", []byte("content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	argv := func(a ...string) backends.ExecSpec { return backends.ExecSpec{Argv: a} }
	tests := []struct {
		name string
		spec backends.ExecSpec
		want result
	}{
		{"true", argv("true"), result{}},
		{"false", argv("false"), result{Code: 1}},
		{"echo", argv("echo", "a", "b"), result{Stdout: "a b\n"}},
		{"echo -n", argv("echo", "-n", "a"), result{Stdout: "a"}},
		{"echo -e", argv("echo", "-e", `a\tb`), result{Stdout: "a\tb\n"}},
		{"printf repeats its format", argv("printf", "%s=%d\n", "a", "1", "b", "2"), result{Stdout: "a=1\nb=2\n"}},
		{"printf escapes and widths", argv("printf", `%-3s|%03d|%x|%%|%b\n`, "a", "7", "255", `x\ty`), result{Stdout: "a  |007|ff|%|x\ty\n"}},
		{"printf bad number", argv("printf", "%d", "x"), result{Code: 1, Stdout: "0", Stderr: "printf: \"x\": invalid number\n"}},
		{"cat files", argv("cat", "/tmp/in.txt", "/tmp/in.txt"), result{Stdout: "content\ncontent\n"}},
		{"cat relative", backends.ExecSpec{Argv: []string{"cat", "in.txt"}, Cwd: "/tmp"}, result{Stdout: "content\n"}},
		{"cat missing", argv("cat", "/nope"), result{Code: 1, Stderr: "cat: /nope: No such file or directory\n"}},
		{"cat stdin", backends.ExecSpec{Argv: []string{"cat", "-"}, Stdin: strings.NewReader("in")}, result{Stdout: "in"}},
		{"cat without stdin", argv("cat"), result{}},
		{"pwd defaults to the workdir", argv("pwd"), result{Stdout: "/workspaces/project\n"}},
		{"id", argv("id"), result{Stdout: "uid=0(root) gid=0(root)\n"}},
		{"id -un", backends.ExecSpec{Argv: []string{"id", "-un"}, User: "1000"}, result{Stdout: "dev\n"}},
		{"id -g", backends.ExecSpec{Argv: []string{"id", "-g"}, User: "dev:5"}, result{Stdout: "5\n"}},
		{"env", backends.ExecSpec{Argv: []string{"env"}, Env: []string{"A=1", "FROM_SPEC=2"}, User: "dev"},
			result{Stdout: "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nHOSTNAME=berth-project\nHOME=/home/dev\nFROM_SPEC=2\nA=1\n"}},
		{"env runs a command", argv("env", "X=1", "sh", "-c", "echo $X"), result{Stdout: "1\n"}},
		{"sleep bad interval", argv("sleep", "x"), result{Code: 1, Stderr: "sleep: invalid time interval \"x\"\n"}},
		{"sleep short", argv("sleep", "0.01", "0s"), result{}},
		{"mkdir and rm", argv("sh", "-c", "mkdir -p /a/b/c && test -d /a/b/c && rm /a; rm -r /a && test ! -e /a && echo gone"),
			result{Stdout: "gone\n", Stderr: "rm: '/a' is a directory\n"}},
		{"mkdir without -p", argv("mkdir", "/x/y"), result{Code: 1, Stderr: "mkdir: can't create directory '/x/y': No such file or directory\n"}},
		{"rm -f of nothing", argv("rm", "-f", "/nothing"), result{}},
		{"by path", argv("/usr/bin/echo", "x"), result{Stdout: "x\n"}},
		{"test syntax", argv("[", "-d", "/tmp"), result{Code: 2, Stderr: "[: missing ]\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, b, inst.ID, tt.spec)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%q (-want +got):\n%s", tt.spec.Argv, diff)
			}
		})
	}
}

func TestExecErrors(t *testing.T) {
	b, inst := up(t, memory.Options{})
	stopped, _, err := b.Ensure(ctxFor(t), backends.Spec{Workspace: "/other", Name: "other", Image: "img"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(ctxFor(t), stopped.ID); err != nil {
		t.Fatal(err)
	}
	foreign, err := b.AddForeign("theirs")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		id   string
		spec backends.ExecSpec
		want error
	}{
		{"unknown command", inst.ID, backends.ExecSpec{Argv: []string{"gcc"}}, backends.ErrCommandNotFound},
		{"path outside the bin dirs", inst.ID, backends.ExecSpec{Argv: []string{"/opt/echo"}}, backends.ErrCommandNotFound},
		{"direct exec of an unknown command", inst.ID, backends.ExecSpec{Argv: []string{"agent"}, Direct: true}, backends.ErrCommandNotFound},
		{"unknown user", inst.ID, backends.ExecSpec{Argv: []string{"true"}, User: "alice"}, backends.ErrBadUser},
		{"unknown group", inst.ID, backends.ExecSpec{Argv: []string{"true"}, User: "0:staff"}, backends.ErrBadUser},
		{"missing cwd", inst.ID, backends.ExecSpec{Argv: []string{"true"}, Cwd: "/nope"}, backends.ErrBadCwd},
		{"relative cwd", inst.ID, backends.ExecSpec{Argv: []string{"true"}, Cwd: "tmp"}, backends.ErrBadCwd},
		{"stopped instance", stopped.ID, backends.ExecSpec{Argv: []string{"true"}}, backends.ErrNotRunning},
		{"missing instance", "mem-99", backends.ExecSpec{Argv: []string{"true"}}, backends.ErrNotFound},
		{"foreign instance", foreign, backends.ExecSpec{Argv: []string{"true"}}, backends.ErrForeign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Stdout, tt.spec.Stderr = io.Discard, io.Discard
			_, err := b.Exec(ctxFor(t), tt.id, tt.spec)
			if !errors.Is(err, tt.want) {
				t.Errorf("Exec: err = %v, want %v", err, tt.want)
			}
		})
	}
}

// start execs argv and returns the process and its output buffers, which
// may be read once Wait returned.
func start(t *testing.T, b *memory.Backend, id string, es backends.ExecSpec) (backends.Process, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errb bytes.Buffer
	es.Stdout, es.Stderr = &out, &errb
	p, err := b.Exec(ctxFor(t), id, es)
	if err != nil {
		t.Fatalf("Exec %q: %v", es.Argv, err)
	}
	return p, &out, &errb
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestProcess(t *testing.T) {
	b, inst := up(t, memory.Options{})
	// started waits until the commands of the instance are argv.
	running := func(t *testing.T, want ...string) {
		t.Helper()
		waitFor(t, func() bool {
			got, _ := b.Processes(ws)
			return cmp.Equal(got, want)
		})
	}

	t.Run("signal ends the group", func(t *testing.T) {
		p, _, _ := start(t, b, inst.ID, shell("sleep 100 & sleep 100"))
		running(t, "sh -c sleep 100 & sleep 100", "sleep 100", "sleep 100")
		if err := p.Signal(ctxFor(t), backends.SIGINT); err != nil {
			t.Fatal(err)
		}
		st, err := p.Wait(ctxFor(t))
		if err != nil || st != (backends.ExitStatus{Code: 130, Signal: "SIGINT"}) {
			t.Errorf("Wait = %+v, %v; want 130 SIGINT", st, err)
		}
		running(t)
	})

	t.Run("ignored signals do nothing", func(t *testing.T) {
		p, _, _ := start(t, b, inst.ID, backends.ExecSpec{Argv: []string{"sleep", "0.05"}})
		for _, sig := range []int{17, 28} { // SIGCHLD, SIGWINCH
			if err := p.Signal(ctxFor(t), sig); err != nil {
				t.Fatal(err)
			}
		}
		if st, err := p.Wait(ctxFor(t)); err != nil || st.Code != 0 {
			t.Errorf("Wait = %+v, %v; want 0", st, err)
		}
		if err := p.Signal(ctxFor(t), backends.SIGTERM); err != nil {
			t.Errorf("Signal after exit: %v", err)
		}
	})

	t.Run("kill unblocks a read of stdin", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		p, _, _ := start(t, b, inst.ID, backends.ExecSpec{Argv: []string{"cat"}, Stdin: pr})
		if err := p.Kill(ctxFor(t)); err != nil {
			t.Fatal(err)
		}
		if st, err := p.Wait(ctxFor(t)); err != nil || st != (backends.ExitStatus{Code: 137, Signal: "SIGKILL"}) {
			t.Errorf("Wait = %+v, %v; want 137 SIGKILL", st, err)
		}
		if err := p.Kill(ctxFor(t)); err != nil {
			t.Errorf("second Kill: %v", err)
		}
	})

	t.Run("stdin EOF reaches the command", func(t *testing.T) {
		pr, pw := io.Pipe()
		p, out, _ := start(t, b, inst.ID, backends.ExecSpec{Argv: []string{"cat"}, Stdin: pr})
		fmt.Fprint(pw, "some input")
		pw.Close()
		if st, err := p.Wait(ctxFor(t)); err != nil || st.Code != 0 || out.String() != "some input" {
			t.Errorf("Wait = %+v, %v, stdout %q; want 0 and the input", st, err, out)
		}
	})

	t.Run("output is written before Wait returns", func(t *testing.T) {
		b.Handle("chatty", func(ctx context.Context, p *memory.Proc) int {
			for i := range 1000 {
				fmt.Fprintf(p.Stdout, "%d\n", i)
				fmt.Fprintf(p.Stderr, "%d\n", i)
			}
			return 0
		})
		got := run(t, b, inst.ID, backends.ExecSpec{Argv: []string{"chatty"}})
		if n := strings.Count(got.Stdout, "\n"); n != 1000 || got.Stdout != got.Stderr {
			t.Errorf("got %d lines of stdout, stderr equal = %v; want 1000 and equal", n, got.Stdout == got.Stderr)
		}
	})

	t.Run("a command that ignores ctx is cut off", func(t *testing.T) {
		release := make(chan struct{})
		b.Handle("stubborn", func(ctx context.Context, p *memory.Proc) int {
			<-release
			fmt.Fprintln(p.Stdout, "too late")
			return 0
		})
		p, out, _ := start(t, b, inst.ID, backends.ExecSpec{Argv: []string{"stubborn"}})
		if err := p.Kill(ctxFor(t)); err != nil {
			t.Fatal(err)
		}
		st, err := p.Wait(ctxFor(t))
		close(release)
		if err != nil || st.Code != 137 {
			t.Errorf("Wait = %+v, %v; want 137", st, err)
		}
		running(t) // the command returned, its write refused
		if out.Len() != 0 {
			t.Errorf("stdout after the cut-off: %q", out)
		}
	})

	t.Run("direct execs can't be signalled", func(t *testing.T) {
		p, _, _ := start(t, b, inst.ID, backends.ExecSpec{Argv: []string{"sleep", "100"}, Direct: true})
		if err := p.Signal(ctxFor(t), backends.SIGTERM); !errors.Is(err, backends.ErrNotSupported) {
			t.Errorf("Signal: err = %v, want ErrNotSupported", err)
		}
		if err := p.Kill(ctxFor(t)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("wait honours ctx", func(t *testing.T) {
		p, _, _ := start(t, b, inst.ID, backends.ExecSpec{Argv: []string{"sleep", "100"}})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := p.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Wait: err = %v, want context.Canceled", err)
		}
		if err := p.Kill(ctxFor(t)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCustomCommands(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	b, inst := up(t, memory.Options{
		Commands: map[string]memory.Command{
			// go writes a file and runs its arguments as a child.
			"go": func(ctx context.Context, p *memory.Proc) int {
				mu.Lock()
				seen = append(seen, fmt.Sprintf("%s in %s as %s", p.Argv, p.Cwd, p.User))
				mu.Unlock()
				if err := p.WriteFile("out.txt", []byte(p.Getenv("FROM_SPEC"))); err != nil {
					fmt.Fprintln(p.Stderr, err)
					return 1
				}
				job := p.Sub(p.Argv[1:]...).Start(ctx)
				return job.Wait()
			},
			"echo": nil, // removes the built-in
		},
	})
	got := run(t, b, inst.ID, backends.ExecSpec{Argv: []string{"go", "sh", "-c", "cat out.txt; exit 3"}})
	if diff := cmp.Diff(result{Code: 3, Stdout: "1"}, got); diff != "" {
		t.Errorf("go (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"[go sh -c cat out.txt; exit 3] in /workspaces/project as root"}, seen); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	_, err := b.Exec(ctxFor(t), inst.ID, backends.ExecSpec{Argv: []string{"echo"}, Stdout: io.Discard, Stderr: io.Discard})
	if !errors.Is(err, backends.ErrCommandNotFound) {
		t.Errorf("removed echo: err = %v, want ErrCommandNotFound", err)
	}
	b.Handle("/opt/tool", func(ctx context.Context, p *memory.Proc) int { return 9 })
	if got := run(t, b, inst.ID, backends.ExecSpec{Argv: []string{"/opt/tool"}}); got.Code != 9 {
		t.Errorf("/opt/tool: code %d, want 9", got.Code)
	}
}

func TestEnsure(t *testing.T) {
	files := func(string) (io.Reader, error) {
		return tarOf(t, map[string]string{"opt/berth/agent": "binary", "opt/berth/": ""}), nil
	}
	t.Run("honours the spec", func(t *testing.T) {
		b := memory.New(memory.Options{Platform: "linux/amd64", Version: "v1", Now: func() time.Time { return time.Unix(1, 0) }})
		s := spec()
		s.Files = files
		s.Init, s.InitPlatforms = []string{"/opt/berth/agent", "init"}, []string{"linux/amd64"}
		inst, created, err := b.Ensure(ctxFor(t), s)
		if err != nil || !created {
			t.Fatalf("Ensure: %v %v", created, err)
		}
		want := backends.Instance{
			ID: "mem-1", Name: "berth-project", Image: "img:1", Workspace: ws, Workdir: "/workspaces/project",
			State: backends.StateRunning, Mounts: s.Mounts, Created: time.Unix(1, 0),
			Labels: map[string]string{
				"extra": "yes", backends.LabelManaged: "true", backends.LabelWorkspace: ws,
				backends.LabelWorkdir: "/workspaces/project", backends.LabelVersion: "v1",
			},
		}
		if diff := cmp.Diff(want, inst); diff != "" {
			t.Errorf("instance (-want +got):\n%s", diff)
		}
		got := run(t, b, inst.ID, shell("cat /opt/berth/agent; echo; echo $FROM_SPEC; ps"))
		if want := "binary\n1\n  PID COMMAND\n    1 /opt/berth/agent init\n    2 sh -c cat /opt/berth/agent; echo; echo $FROM_SPEC; ps\n    6 ps\n"; got.Stdout != want {
			t.Errorf("stdout = %q, want %q", got.Stdout, want)
		}
		goos, goarch, err := b.Platform(ctxFor(t), inst.ID)
		if err != nil || goos+"/"+goarch != "linux/amd64" {
			t.Errorf("Platform = %s/%s, %v", goos, goarch, err)
		}
	})

	t.Run("files and init only for their platform", func(t *testing.T) {
		b := memory.New(memory.Options{Images: map[string]string{"img:1": "linux/arm64"}})
		s := spec()
		s.Files = files
		s.Init, s.InitPlatforms = []string{"/opt/berth/agent", "init"}, []string{"linux/amd64"}
		inst, _, err := b.Ensure(ctxFor(t), s)
		if err != nil {
			t.Fatal(err)
		}
		got := run(t, b, inst.ID, shell("test -e /opt/berth/agent; echo $?; ps"))
		if !strings.HasPrefix(got.Stdout, "1\n  PID COMMAND\n    1 berth-keepalive\n") {
			t.Errorf("stdout = %q, want no agent and the keep-alive", got.Stdout)
		}
	})

	t.Run("failed files leave no instance", func(t *testing.T) {
		b := memory.New(memory.Options{})
		s := spec()
		s.Files = func(string) (io.Reader, error) { return nil, errors.New("no agent") }
		if _, _, err := b.Ensure(ctxFor(t), s); err == nil || !strings.Contains(err.Error(), "no agent") {
			t.Errorf("Ensure: err = %v, want the files error", err)
		}
		if _, err := b.Find(ctxFor(t), ws); !errors.Is(err, backends.ErrNotFound) {
			t.Errorf("Find: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("concurrent calls wait for the creation", func(t *testing.T) {
		b := memory.New(memory.Options{})
		release := make(chan struct{})
		s := spec()
		s.Files = func(string) (io.Reader, error) { <-release; return tarOf(t, nil), nil }
		type res struct {
			inst    backends.Instance
			created bool
			err     error
		}
		results := make(chan res, 2)
		for range 2 {
			go func() {
				inst, created, err := b.Ensure(ctxFor(t), s)
				results <- res{inst, created, err}
			}()
		}
		waitFor(t, func() bool { return b.Calls("Ensure") == 2 })
		if _, err := b.Find(ctxFor(t), ws); !errors.Is(err, backends.ErrNotFound) {
			t.Errorf("Find during creation: err = %v, want ErrNotFound", err)
		}
		close(release)
		a, c := <-results, <-results
		if a.err != nil || c.err != nil || a.created == c.created || a.inst.ID != c.inst.ID {
			t.Errorf("Ensure results %+v and %+v: want one created, one the same instance", a, c)
		}
	})

	t.Run("name taken", func(t *testing.T) {
		b, _ := up(t, memory.Options{})
		s := spec()
		s.Workspace = "/elsewhere"
		if _, _, err := b.Ensure(ctxFor(t), s); err == nil {
			t.Error("Ensure with another workspace's name: no error")
		}
	})

	t.Run("missing image", func(t *testing.T) {
		b := memory.New(memory.Options{})
		s := spec()
		s.Image = ""
		if _, _, err := b.Ensure(ctxFor(t), s); !errors.Is(err, backends.ErrImageNotFound) {
			t.Errorf("Ensure without an image: err = %v, want ErrImageNotFound", err)
		}
	})
}

// tarOf makes a tar of files (a name ending in / is a directory).
func tarOf(t *testing.T, files map[string]string) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range files {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(name, "/") {
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// untar lists a tar as name → content ("dir" for directories, "-> target"
// for symlinks).
func untar(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			out[hdr.Name] = "dir"
		case tar.TypeSymlink:
			out[hdr.Name] = "-> " + hdr.Linkname
		default:
			data, _ := io.ReadAll(tr)
			out[hdr.Name] = string(data)
		}
	}
}

func TestCopy(t *testing.T) {
	b, inst := up(t, memory.Options{})
	ctx := ctxFor(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "./d/", Typeflag: tar.TypeDir, Mode: 0o700},
		{Name: "d/sub/f.txt", Typeflag: tar.TypeReg, Mode: 0o600, Size: 2},
		{Name: "d/link", Typeflag: tar.TypeSymlink, Linkname: "sub/f.txt"},
		{Name: "d/hard", Typeflag: tar.TypeLink, Linkname: "d/sub/f.txt"},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("hi"))
		}
	}
	tw.Close()
	if err := b.CopyTo(ctx, inst.ID, "/tmp", &buf); err != nil {
		t.Fatalf("CopyTo: %v", err)
	}
	rc, err := b.CopyFrom(ctx, inst.ID, "/tmp/d")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	want := map[string]string{"d/": "dir", "d/sub/": "dir", "d/sub/f.txt": "hi", "d/link": "-> sub/f.txt", "d/hard": "hi"}
	if diff := cmp.Diff(want, untar(t, rc)); diff != "" {
		t.Errorf("CopyFrom (-want +got):\n%s", diff)
	}
	fsys, err := b.FS(inst.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := fsys.Stat("/tmp/d/sub/f.txt"); err != nil || fi.Mode() != 0o600 {
		t.Errorf("Stat = %v, %v; want mode 0600", fi, err)
	}
	if err := fstest.TestFS(fsys.Snapshot(), "tmp/d/sub/f.txt", "tmp/d/hard"); err != nil {
		t.Errorf("Snapshot: %v", err)
	}

	errTests := []struct {
		name string
		dir  string
		tar  io.Reader
		want error
	}{
		{"missing dir", "/nope", tarOf(t, map[string]string{"f": "x"}), fs.ErrNotExist},
		{"file over a dir", "/", tarOf(t, map[string]string{"tmp": "x"}), nil},
		{"escape", "/tmp", tarOf(t, map[string]string{"../etc/passwd": "x"}), nil},
		{"not a tar", "/tmp", strings.NewReader("garbage that is not a tar stream at all, long enough to need a header block...."), nil},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.CopyTo(ctx, inst.ID, tt.dir, tt.tar)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("CopyTo: err = %v, want an error (%v)", err, tt.want)
			}
		})
	}
	if _, err := fsys.Stat("/etc/passwd"); err == nil {
		t.Error("an escaping entry was written")
	}
	if _, err := b.CopyFrom(ctx, inst.ID, "/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CopyFrom of a missing path: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := b.CopyFrom(ctx, "mem-99", "/tmp"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("CopyFrom of a missing instance: err = %v, want ErrNotFound", err)
	}
}

// watch runs Watch until the test ends and returns a func that waits for
// n events and returns them.
func watch(t *testing.T, b *memory.Backend) func(n int) []backends.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan backends.Event, 100)
	done := make(chan error)
	go func() { done <- b.Watch(ctx, func(e backends.Event) { events <- e }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	})
	if err := b.WaitWatchers(ctxFor(t), 1); err != nil {
		t.Fatal(err)
	}
	return func(n int) []backends.Event {
		t.Helper()
		var got []backends.Event
		for range n {
			select {
			case e := <-events:
				got = append(got, e)
			case <-time.After(5 * time.Second):
				t.Fatalf("got %d events, want %d: %v", len(got), n, got)
			}
		}
		select {
		case e := <-events:
			t.Errorf("unexpected extra event %v", e)
		case <-time.After(10 * time.Millisecond):
		}
		return got
	}
}

func TestEvents(t *testing.T) {
	b := memory.New(memory.Options{})
	next := watch(t, b)
	ctx := ctxFor(t)
	ev := func(kind backends.EventKind, id string) backends.Event {
		return backends.Event{Kind: kind, ID: id, Name: "berth-project", Workspace: ws}
	}
	engine := func(kind backends.EventKind) backends.Event { return backends.Event{Kind: kind} }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ensure := func() string {
		t.Helper()
		inst, _, err := b.Ensure(ctx, spec())
		must(err)
		return inst.ID
	}

	id := ensure()
	ensure() // already running: no event
	must(b.Stop(ctx, id))
	must(b.Stop(ctx, id)) // already stopped: no event
	ensure()
	must(b.StopExternally(ws))
	must(b.StartExternally(ws))
	must(b.KillExternally(id))
	ensure()
	must(b.RemoveExternally("berth-project"))
	id2 := ensure()
	must(b.Remove(ctx, id2))
	want := []backends.Event{
		ev(backends.EventStarted, id), ev(backends.EventStopped, id), ev(backends.EventStarted, id),
		ev(backends.EventStopped, id), ev(backends.EventStarted, id), ev(backends.EventKilled, id),
		ev(backends.EventStarted, id), ev(backends.EventKilled, id), ev(backends.EventRemoved, id),
		ev(backends.EventStarted, id2), ev(backends.EventStopped, id2), ev(backends.EventRemoved, id2),
	}
	if diff := cmp.Diff(want, next(len(want))); diff != "" {
		t.Errorf("lifecycle events (-want +got):\n%s", diff)
	}

	id3 := ensure()
	next(1)
	b.SetDown(true)
	must(b.StopExternally(ws)) // missed while the engine is lost
	b.Freeze()
	b.SetDown(false)
	b.Thaw()
	b.AnnounceShutdown()
	want = []backends.Event{engine(backends.EventDaemonLost), engine(backends.EventDaemonBack), engine(backends.EventDaemonShutdown)}
	if diff := cmp.Diff(want, next(len(want))); diff != "" {
		t.Errorf("engine events (-want +got):\n%s", diff)
	}
	if inst, err := b.Find(ctx, ws); err != nil || inst.ID != id3 || inst.State != backends.StateStopped {
		t.Errorf("Find after the outage = %+v, %v; want %s stopped", inst, err, id3)
	}

	// A watcher that starts while the engine is lost hears so first.
	b.SetDown(true)
	late := watch(t, b)
	if diff := cmp.Diff([]backends.Event{engine(backends.EventDaemonLost)}, late(1)); diff != "" {
		t.Errorf("late watcher (-want +got):\n%s", diff)
	}
	next(1)
	b.SetDown(false)
	next(1)
	late(1)
}

func TestExternalChangesEndProcesses(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(*memory.Backend) error
		after  error // of a later Exec
	}{
		{"stop", func(b *memory.Backend) error { return b.StopExternally(ws) }, backends.ErrNotRunning},
		{"kill", func(b *memory.Backend) error { return b.KillExternally(ws) }, backends.ErrNotRunning},
		{"remove", func(b *memory.Backend) error { return b.RemoveExternally(ws) }, backends.ErrNotFound},
		{"stop by berth", func(b *memory.Backend) error { return b.Stop(context.Background(), "berth-project") }, backends.ErrNotRunning},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, inst := up(t, memory.Options{})
			p, _, _ := start(t, b, inst.ID, shell("sleep 100 | cat"))
			if err := tt.change(b); err != nil {
				t.Fatal(err)
			}
			if st, err := p.Wait(ctxFor(t)); err != nil || st.Code != 137 {
				t.Errorf("Wait = %+v, %v; want 137", st, err)
			}
			_, err := b.Exec(ctxFor(t), inst.ID, backends.ExecSpec{Argv: []string{"true"}, Stdout: io.Discard, Stderr: io.Discard})
			if !errors.Is(err, tt.after) {
				t.Errorf("Exec after: err = %v, want %v", err, tt.after)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		b, inst := up(t, memory.Options{})
		b.SetDown(true)
		ctx := ctxFor(t)
		calls := map[string]func() error{
			"Ping":   func() error { return b.Ping(ctx) },
			"Ensure": func() error { _, _, err := b.Ensure(ctx, spec()); return err },
			"Find":   func() error { _, err := b.Find(ctx, ws); return err },
			"List":   func() error { _, err := b.List(ctx); return err },
			"Stop":   func() error { return b.Stop(ctx, inst.ID) },
			"Remove": func() error { return b.Remove(ctx, inst.ID) },
			"Exec": func() error {
				_, err := b.Exec(ctx, inst.ID, backends.ExecSpec{Argv: []string{"true"}, Stdout: io.Discard, Stderr: io.Discard})
				return err
			},
			"CopyTo":   func() error { return b.CopyTo(ctx, inst.ID, "/", tarOf(t, nil)) },
			"CopyFrom": func() error { _, err := b.CopyFrom(ctx, inst.ID, "/tmp"); return err },
			"Platform": func() error { _, _, err := b.Platform(ctx, inst.ID); return err },
		}
		for name, call := range calls {
			if err := call(); !errors.Is(err, backends.ErrUnavailable) {
				t.Errorf("%s: err = %v, want ErrUnavailable", name, err)
			}
			if n := b.Calls(name); n != 1 && !(name == "Ensure" && n == 2) {
				t.Errorf("Calls(%q) = %d", name, n)
			}
		}
		b.SetDown(false)
		if err := b.Ping(ctx); err != nil {
			t.Errorf("Ping after SetDown(false): %v", err)
		}
		b.ResetCalls()
		if n := b.Calls("Ping"); n != 0 {
			t.Errorf("Calls after ResetCalls = %d", n)
		}
	})

	t.Run("frozen", func(t *testing.T) {
		b, inst := up(t, memory.Options{})
		b.Freeze()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		err := b.Stop(ctx, inst.ID)
		if !errors.Is(err, backends.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Stop while frozen: err = %v, want ErrUnavailable and DeadlineExceeded", err)
		}
		done := make(chan error)
		go func() { _, err := b.Find(context.Background(), ws); done <- err }()
		waitFor(t, func() bool { return b.Calls("Find") == 1 })
		select {
		case err := <-done:
			t.Fatalf("Find returned while frozen: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		b.Thaw()
		if err := <-done; err != nil {
			t.Errorf("Find after Thaw: %v", err)
		}
		if inst, _ := b.Find(context.Background(), ws); inst.State != backends.StateRunning {
			t.Errorf("state = %s; the timed-out Stop must not have happened", inst.State)
		}
	})

	t.Run("injected error", func(t *testing.T) {
		b, _ := up(t, memory.Options{})
		boom := fmt.Errorf("boom: %w", backends.ErrImageNotFound)
		b.SetError("Ensure", boom)
		if _, _, err := b.Ensure(ctxFor(t), spec()); err != boom {
			t.Errorf("Ensure: err = %v, want %v", err, boom)
		}
		if _, err := b.Find(ctxFor(t), ws); err != nil {
			t.Errorf("Find: %v; only Ensure should fail", err)
		}
		b.SetError("Ensure", nil)
		if _, _, err := b.Ensure(ctxFor(t), spec()); err != nil {
			t.Errorf("Ensure after clearing: %v", err)
		}
	})
}

func TestOptions(t *testing.T) {
	b := memory.New(memory.Options{})
	if b.Name() != "memory" || b.Local() {
		t.Errorf("defaults: Name %q Local %v", b.Name(), b.Local())
	}
	b = memory.New(memory.Options{Name: "docker", Local: true})
	if b.Name() != "docker" || !b.Local() {
		t.Errorf("configured: Name %q Local %v", b.Name(), b.Local())
	}
	var _ backends.Localer = b
	var _ backends.Watcher = b
}

func TestFS(t *testing.T) {
	b, _ := up(t, memory.Options{Now: func() time.Time { return time.Unix(5, 0) }})
	fsys, err := b.FS(ws)
	if err != nil {
		t.Fatal(err)
	}
	// Steps run in order; want is nil for success, errAny for an error of
	// no particular kind.
	errAny := errors.New("any error")
	steps := []struct {
		name string
		do   func() error
		want error
	}{
		{"mkdir", func() error { return fsys.Mkdir("/srv", 0o755) }, nil},
		{"mkdir again", func() error { return fsys.Mkdir("/srv", 0o755) }, fs.ErrExist},
		{"mkdir without parent", func() error { return fsys.Mkdir("/a/b", 0o755) }, fs.ErrNotExist},
		{"write", func() error { return fsys.WriteFile("/srv/f", []byte("x"), 0o600) }, nil},
		{"write without parent", func() error { return fsys.WriteFile("/nope/f", nil, 0o600) }, fs.ErrNotExist},
		{"relative", func() error { return fsys.WriteFile("srv/f", nil, 0o600) }, fs.ErrInvalid},
		{"remove a non-empty dir", func() error { return fsys.Remove("/srv") }, errAny},
		{"read a dir", func() error { _, err := fsys.ReadFile("/srv"); return err }, errAny},
		{"mkdir over a file", func() error { return fsys.MkdirAll("/srv/f/g", 0o755) }, errAny},
	}
	for _, s := range steps {
		err := s.do()
		switch {
		case s.want == errAny:
			if err == nil {
				t.Errorf("%s: no error", s.name)
			}
		case !errors.Is(err, s.want):
			t.Errorf("%s: err = %v, want %v", s.name, err, s.want)
		}
	}
	entries, err := fsys.ReadDir("/srv")
	if err != nil || len(entries) != 1 || entries[0].Name() != "f" {
		t.Errorf("ReadDir = %v, %v", entries, err)
	}
	if err := fsys.RemoveAll("/srv"); err != nil {
		t.Fatal(err)
	}
	snap := fsys.Snapshot()
	if _, ok := snap["srv"]; ok {
		t.Error("srv left after RemoveAll")
	}
	if f := snap["workspaces/project"]; f == nil || !f.Mode.IsDir() || !f.ModTime.Equal(time.Unix(5, 0)) {
		t.Errorf("mount point = %+v, want a directory stamped by Now", f)
	}
}
