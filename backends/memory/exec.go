package memory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthdev/berth/backends"
)

// Command is a program of the command table. It runs with the process
// group's ctx, which ends when the process is signalled or killed or its
// instance stops, and returns the exit code. It must return soon after ctx
// ends; one that doesn't is cut off a second after a kill, its output
// dropped from then on. Commands for tests live in Options.Commands or are
// added with Handle.
type Command func(ctx context.Context, p *Proc) int

// Proc is one running command: its arguments, environment and stdio, and
// its way into the instance's files and command table. A command may read
// and change its own Proc; Sub makes a child's.
type Proc struct {
	Argv     []string
	Env      []string // KEY=VALUE; later entries win
	Cwd      string   // absolute container path
	User     string   // user name, or the uid when it has none
	UID, GID int
	Stdin    io.Reader // never nil; EOF when the exec had no stdin
	Stdout   io.Writer
	Stderr   io.Writer
	PID      int // set when the command starts

	b    *Backend
	in   *instance
	proc *process // the exec this command belongs to
}

// Getenv returns the value of key in p.Env, or "".
func (p *Proc) Getenv(key string) string {
	v, _ := lookupEnv(p.Env, key)
	return v
}

// Setenv sets key in p.Env, for the children p starts.
func (p *Proc) Setenv(key, value string) {
	p.Env = setEnv(p.Env, key, value)
}

func lookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

func setEnv(env []string, key, value string) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == key
	})
	return append(out, key+"="+value)
}

// mergeEnv appends layers, a later KEY replacing an earlier one in place.
func mergeEnv(layers ...[]string) []string {
	var out []string
	at := map[string]int{}
	for _, layer := range layers {
		for _, kv := range layer {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := at[k]; ok {
				out[i] = kv
				continue
			}
			at[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// Path resolves name against p.Cwd.
func (p *Proc) Path(name string) string {
	if path.IsAbs(name) {
		return path.Clean(name)
	}
	return path.Join(p.Cwd, name)
}

// FS returns the instance's filesystem.
func (p *Proc) FS() *FS { return p.in.fs }

// ReadFile reads name, relative to p.Cwd.
func (p *Proc) ReadFile(name string) ([]byte, error) { return p.in.fs.ReadFile(p.Path(name)) }

// WriteFile writes name, relative to p.Cwd, with mode 0644.
func (p *Proc) WriteFile(name string, data []byte) error {
	return p.in.fs.WriteFile(p.Path(name), data, 0o644)
}

// Sub returns the Proc of a child running argv: a copy of p that shares its
// stdio, environment, directory and user, which the caller may change
// before Run or Start.
func (p *Proc) Sub(argv ...string) *Proc {
	q := *p
	q.Argv = argv
	q.Env = slices.Clone(p.Env)
	q.PID = 0
	return &q
}

// Run runs p's command in the foreground, as a child in the caller's
// process group, and returns its exit code: 127, with a message on
// p.Stderr, when the command table has no p.Argv[0]. Nil stdio reads as
// empty and writes nowhere.
func (p *Proc) Run(ctx context.Context) int {
	cmd, done, code := p.spawn()
	if cmd == nil {
		return code
	}
	defer done()
	return cmd(ctx, p)
}

// Start runs p's command in the background, in the caller's process
// group. The exec is not done until the command returns, as a real exec's
// stream stays open while a child holds its output.
func (p *Proc) Start(ctx context.Context) *Job {
	j := &Job{done: make(chan struct{})}
	cmd, done, code := p.spawn()
	if cmd == nil {
		j.code = code
		close(j.done)
		return j
	}
	p.proc.kids.Add(1)
	go func() {
		defer p.proc.kids.Done()
		defer close(j.done)
		defer done()
		j.code = cmd(ctx, p)
	}()
	return j
}

// spawn looks p's command up and gives it a pid; done releases the pid.
func (p *Proc) spawn() (cmd Command, done func(), code int) {
	if len(p.Argv) == 0 {
		return nil, nil, 0
	}
	if p.Stdin == nil {
		p.Stdin = eofReader{}
	}
	if p.Stdout == nil {
		p.Stdout = io.Discard
	}
	if p.Stderr == nil {
		p.Stderr = io.Discard
	}
	b := p.b
	b.mu.Lock()
	defer b.mu.Unlock()
	cmd = b.commandLocked(p.Argv[0])
	if cmd == nil {
		fmt.Fprintf(p.Stderr, "sh: %s: not found\n", p.Argv[0])
		return nil, nil, 127
	}
	p.PID = p.in.addPIDLocked(p.Argv)
	pid := p.PID
	return cmd, func() {
		b.mu.Lock()
		delete(p.in.pids, pid)
		b.mu.Unlock()
	}, 0
}

func (in *instance) addPIDLocked(argv []string) int {
	in.nextPID++
	in.pids[in.nextPID] = strings.Join(argv, " ")
	return in.nextPID
}

// Job is a command started in the background.
type Job struct {
	done chan struct{} // closed when the command returned
	code int
}

// Wait blocks until the command returns and gives its exit code.
func (j *Job) Wait() int {
	<-j.done
	return j.code
}

// Done is closed when the command has returned.
func (j *Job) Done() <-chan struct{} { return j.done }

// Handle adds cmd to the command table as name, replacing any command of
// that name; a nil cmd removes it. A name with a slash matches only that
// path; a bare name also matches /bin/name, /usr/bin/name and the like.
func (b *Backend) Handle(name string, cmd Command) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handleLocked(name, cmd)
}

func (b *Backend) handleLocked(name string, cmd Command) {
	if cmd == nil {
		delete(b.commands, name)
		return
	}
	b.commands[name] = cmd
}

// binDirs are the directories whose commands are found by base name.
var binDirs = []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"}

func (b *Backend) commandLocked(argv0 string) Command {
	if cmd := b.commands[argv0]; cmd != nil {
		return cmd
	}
	if dir, base := path.Split(argv0); dir != "" && slices.Contains(binDirs, path.Clean(dir)) {
		return b.commands[base]
	}
	return nil
}

// userLocked resolves an ExecSpec's user: a known name, a uid, or either
// with ":group".
func (b *Backend) userLocked(spec string) (name string, uid, gid int, err error) {
	if spec == "" {
		spec = "root"
	}
	u, g, hasGroup := strings.Cut(spec, ":")
	uid, ok := b.idLocked(u)
	if !ok {
		return "", 0, 0, fmt.Errorf("memory: user: %w: %q is not one of the backend's users", backends.ErrBadUser, spec)
	}
	gid = uid
	if hasGroup {
		if gid, ok = b.idLocked(g); !ok {
			return "", 0, 0, fmt.Errorf("memory: user: %w: group of %q is not one of the backend's users", backends.ErrBadUser, spec)
		}
	}
	name = strconv.Itoa(uid)
	for _, n := range slices.Sorted(maps.Keys(b.users)) {
		if b.users[n] == uid {
			name = n
			break
		}
	}
	return name, uid, gid, nil
}

func (b *Backend) idLocked(s string) (int, bool) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return n, true
	}
	n, ok := b.users[s]
	return n, ok
}

func home(name string, uid int) string {
	switch _, err := strconv.Atoi(name); {
	case uid == 0:
		return "/root"
	case err == nil:
		return "/"
	}
	return "/home/" + name
}

// Exec implements backends.Backend. argv[0] is looked up in the command
// table; a user must be known (Options.Users) or numeric; a cwd must be an
// existing absolute directory, and defaults to the instance's workdir. The
// environment is PATH, HOSTNAME and HOME, then Spec.Env, then the
// ExecSpec's. Direct execs run the same way, except that Signal is
// unsupported.
//
// When the process is done its stdin, if an io.Closer, is closed, as the
// real backends do; a stdin that blocks in Read and can't be closed holds
// Wait until the Read returns.
func (b *Backend) Exec(ctx context.Context, id string, spec backends.ExecSpec) (backends.Process, error) {
	if err := b.enter(ctx, "Exec"); err != nil {
		return nil, err
	}
	if len(spec.Argv) == 0 {
		return nil, errors.New("memory: exec: empty argv")
	}
	if spec.Stdout == nil || spec.Stderr == nil {
		return nil, errors.New("memory: exec: Stdout and Stderr must not be nil")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	in, err := b.lookupLocked("exec in", id)
	if err != nil {
		return nil, err
	}
	if in.state != backends.StateRunning {
		return nil, fmt.Errorf("memory: exec in %s: %w", in.name, backends.ErrNotRunning)
	}
	cmd := b.commandLocked(spec.Argv[0])
	if cmd == nil {
		return nil, fmt.Errorf("memory: %q: %w in the instance (not in the command table)", spec.Argv[0], backends.ErrCommandNotFound)
	}
	user, uid, gid, err := b.userLocked(spec.User)
	if err != nil {
		return nil, err
	}
	cwd := spec.Cwd
	if cwd == "" {
		cwd = in.workdir
		if cwd == "" {
			cwd = "/"
		}
	}
	if !path.IsAbs(cwd) || !in.fs.isDir(cwd) {
		return nil, fmt.Errorf("memory: cwd: %w: %s is not a directory in the instance", backends.ErrBadCwd, cwd)
	}
	base := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOSTNAME=" + in.name,
		"HOME=" + home(user, uid),
	}
	pctx, cancel := context.WithCancelCause(context.Background())
	p := &process{
		b: b, in: in, direct: spec.Direct,
		ctx: pctx, cancel: cancel,
		stdout: &gate{w: spec.Stdout}, stderr: &gate{w: spec.Stderr},
		stdin:  spec.Stdin,
		killed: make(chan struct{}), done: make(chan struct{}), stdinDone: make(chan struct{}),
	}
	leader := &Proc{
		Argv: slices.Clone(spec.Argv), Env: mergeEnv(base, in.env, spec.Env), Cwd: path.Clean(cwd),
		User: user, UID: uid, GID: gid, Stdout: p.stdout, Stderr: p.stderr,
		b: b, in: in, proc: p,
	}
	if spec.Stdin != nil {
		p.pr, p.pw = io.Pipe()
		leader.Stdin = p.pr
		go p.copyStdin()
	} else {
		leader.Stdin = eofReader{}
		close(p.stdinDone)
	}
	leader.PID = in.addPIDLocked(leader.Argv)
	in.execs[p] = struct{}{}
	go p.run(cmd, leader, leader.PID)
	return p, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// gate passes writes to w until closed, then refuses them, so that nothing
// reaches an ExecSpec's writers after Wait returned.
type gate struct {
	mu     sync.Mutex // guards the following; held across w.Write
	w      io.Writer
	closed bool
}

func (g *gate) Write(b []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, io.ErrClosedPipe
	}
	return g.w.Write(b)
}

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
}

// killGrace is how long a killed command has to return before its process
// is declared done without it.
const killGrace = time.Second

// process is one exec: its command and the children it started.
//
// Goroutines: run runs the command, waits for its background children and
// finishes the process; copyStdin copies the ExecSpec's stdin into the
// command's until either ends. finish waits for copyStdin. After a kill a
// timer may finish the process without run, if the command ignores ctx.
type process struct {
	b      *Backend
	in     *instance
	direct bool
	ctx    context.Context // the group's; ends on a terminating signal
	cancel context.CancelCauseFunc
	stdout *gate
	stderr *gate
	stdin  io.Reader      // the ExecSpec's, or nil
	pr     *io.PipeReader // the command's stdin, when stdin is not nil
	pw     *io.PipeWriter
	kids   sync.WaitGroup // background children

	killed    chan struct{} // closed by the first terminating signal
	done      chan struct{} // closed by finish, once status is set
	stdinDone chan struct{} // closed when copyStdin returns

	mu       sync.Mutex // guards the following
	sig      int        // first terminating signal delivered
	finished bool
	timer    *time.Timer
	status   backends.ExitStatus
}

func (p *process) copyStdin() {
	defer close(p.stdinDone)
	_, err := io.Copy(p.pw, p.stdin)
	_ = p.pw.CloseWithError(err) // nil: EOF for the command
}

func (p *process) run(cmd Command, leader *Proc, pid int) {
	code := cmd(p.ctx, leader)
	p.b.mu.Lock()
	delete(p.in.pids, pid)
	p.b.mu.Unlock()
	p.kids.Wait()
	p.finish(code)
}

// finish sets the status, once, and releases everything the process held.
func (p *process) finish(code int) {
	p.mu.Lock()
	if p.finished {
		p.mu.Unlock()
		return
	}
	p.finished = true
	if p.timer != nil {
		p.timer.Stop()
	}
	if p.sig != 0 {
		code = 128 + p.sig
	}
	p.status = backends.StatusFromCode(code)
	p.mu.Unlock()

	p.cancel(nil)
	p.stdout.close()
	p.stderr.close()
	if p.pr != nil {
		_ = p.pr.CloseWithError(io.ErrClosedPipe)
		// Unblock copyStdin, which may sit in a Read of the caller's stdin.
		if c, ok := p.stdin.(io.Closer); ok {
			_ = c.Close()
		}
	}
	<-p.stdinDone
	p.b.mu.Lock()
	delete(p.in.execs, p)
	p.b.mu.Unlock()
	close(p.done)
}

// ignored are signals whose default action does not end a process (or
// stops it, which this backend does not model).
var ignored = map[int]bool{17: true, 18: true, 19: true, 20: true, 21: true, 22: true, 23: true, 28: true}

// terminate delivers a terminating signal to the whole group: their ctx
// ends, their stdin closes, and the process is finished after killGrace if
// the command has not returned by then.
func (p *process) terminate(sig int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished || p.sig != 0 {
		return
	}
	p.sig = sig
	close(p.killed)
	p.cancel(signalError(sig))
	if p.pr != nil {
		_ = p.pr.CloseWithError(io.ErrClosedPipe)
	}
	p.timer = time.AfterFunc(killGrace, func() { p.finish(0) })
}

type signalError int

func (s signalError) Error() string { return "killed by " + backends.SignalName(int(s)) }

// Wait implements backends.Process.
func (p *process) Wait(ctx context.Context) (backends.ExitStatus, error) {
	select {
	case <-p.done:
		return p.status, nil
	case <-ctx.Done():
		return backends.ExitStatus{}, ctx.Err()
	}
}

// Signal implements backends.Process. Signals whose default action is to
// ignore the process or stop it have no effect; any other ends the whole
// group with 128+sig.
func (p *process) Signal(ctx context.Context, sig int) error {
	p.b.mu.Lock()
	p.b.calls["Signal"]++
	p.b.mu.Unlock()
	if p.direct {
		return fmt.Errorf("memory: signal: direct exec: %w", backends.ErrNotSupported)
	}
	if sig < 1 || sig > 64 {
		return fmt.Errorf("memory: signal %d out of range 1-64", sig)
	}
	if !ignored[sig] {
		p.terminate(sig)
	}
	return nil
}

// Kill implements backends.Process. It returns once the process is done,
// or when ctx ends.
func (p *process) Kill(ctx context.Context) error {
	p.b.mu.Lock()
	p.b.calls["Kill"]++
	p.b.mu.Unlock()
	p.terminate(backends.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("memory: kill: %w", ctx.Err())
	}
}
