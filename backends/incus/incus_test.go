package incus_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/backends/incus/rest"
)

// testImage is the busybox image testdata/images/busybox.sh imports for
// Incus.
func testImage() string { return backendtest.IncusImage() }

func TestMain(m *testing.M) {
	if b, err := incus.New(slog.New(slog.DiscardHandler), "test"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		backendtest.Sweep(ctx, b)
		cancel()
		b.Close()
	}
	os.Exit(m.Run())
}

func newBackend(t *testing.T) *incus.Backend {
	t.Helper()
	b, err := incus.New(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	backendtest.Need(t, b)
	return b
}

// rawClient talks to incusd directly, as a user would.
func rawClient(t *testing.T) *rest.Client {
	t.Helper()
	cli := rest.Unix("", rest.Options{UserAgent: "berth-test"})
	t.Cleanup(cli.CloseIdleConnections)
	return cli
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, harness(newBackend(t), rawClient(t), ""))
}

// harness is the conformance suite's for b, with cli to reach its engine
// behind its back; foreign instances go to the cluster member target, or
// anywhere for "".
func harness(b *incus.Backend, cli *rest.Client, target string) backendtest.Harness {
	return backendtest.Harness{
		Backend: b,
		Kernel:  true,
		Image:   testImage(),
		RemoveBehind: func(ctx context.Context, id string) error {
			name, _, _ := strings.Cut(id, ".")
			return forceDelete(ctx, cli, name)
		},
		CreateForeign: func(ctx context.Context, name string) (func(), error) {
			op, err := cli.CreateInstanceOn(ctx, rest.InstancesPost{
				Name:   name,
				Type:   "container",
				Source: rest.InstanceSource{Type: "image", Alias: testImage()},
			}, target)
			if err == nil {
				_, err = cli.Wait(ctx, op.ID)
			}
			if err != nil {
				return nil, fmt.Errorf("create foreign: %w", err)
			}
			return func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				_ = forceDelete(ctx, cli, name)
			}, nil
		},
	}
}

func forceDelete(ctx context.Context, cli *rest.Client, name string) error {
	if op, err := cli.UpdateInstanceState(ctx, name, rest.InstanceStatePut{Action: "stop", Force: true}); err == nil {
		_, _ = cli.Wait(ctx, op.ID) // fails when already stopped
	}
	op, err := cli.DeleteInstance(ctx, name)
	if err != nil {
		return err
	}
	_, err = cli.Wait(ctx, op.ID)
	return err
}

// newSpec makes a spec for a fresh temp workspace; the instance goes with
// the test.
func newSpec(t *testing.T, b *incus.Backend) backends.Spec {
	t.Helper()
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wd := "/workspaces/" + filepath.Base(ws)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if inst, err := b.Find(ctx, ws); err == nil {
			_ = b.Remove(ctx, inst.ID)
		}
	})
	return backends.Spec{
		Workspace: ws,
		Name:      fmt.Sprintf("berth-test-%d", time.Now().UnixNano()),
		Image:     testImage(),
		Workdir:   wd,
		Mounts:    []backends.Mount{{Host: ws, Container: wd}},
		Labels:    map[string]string{backendtest.LabelTest: t.Name()},
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func up(t *testing.T, b *incus.Backend, spec backends.Spec) backends.Instance {
	t.Helper()
	inst, _, err := b.Ensure(ctxFor(t), spec)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	return inst
}

// run executes spec and returns exit code, stdout and stderr.
func run(t *testing.T, b *incus.Backend, id string, spec backends.ExecSpec) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	spec.Stdout, spec.Stderr = &out, &errb
	p, err := b.Exec(ctxFor(t), id, spec)
	if err != nil {
		t.Fatalf("Exec %v: %v", spec.Argv, err)
	}
	st, err := p.Wait(ctxFor(t))
	if err != nil {
		t.Fatalf("Wait %v: %v", spec.Argv, err)
	}
	return st.Code, out.String(), errb.String()
}

// Within one Backend, Ensure is serialised per workspace; separate Backends
// stand in for separate berth processes and race in incusd itself.
func TestEnsureAcrossBackends(t *testing.T) {
	bs := []*incus.Backend{newBackend(t), newBackend(t), newBackend(t)}
	spec := newSpec(t, bs[0])
	const perBackend = 4
	type result struct {
		id      string
		created bool
		err     error
	}
	results := make(chan result, len(bs)*perBackend)
	var wg sync.WaitGroup
	for _, b := range bs {
		for range perBackend {
			wg.Add(1)
			go func() {
				defer wg.Done()
				inst, created, err := b.Ensure(ctxFor(t), spec)
				results <- result{inst.ID, created, err}
			}()
		}
	}
	wg.Wait()
	close(results)
	ids, creators := map[string]bool{}, 0
	for r := range results {
		if r.err != nil {
			t.Fatalf("Ensure: %v", r.err)
		}
		ids[r.id] = true
		if r.created {
			creators++
		}
	}
	if len(ids) != 1 || creators != 1 {
		t.Errorf("got ids %v and %d creators; want one id, one creator", ids, creators)
	}
}

func TestInstanceLabelsAndEnv(t *testing.T) {
	b := newBackend(t)
	spec := newSpec(t, b)
	spec.Env = []string{"BERTH_GREETING=hi there"}
	inst := up(t, b, spec)
	want := map[string]string{
		"berth.managed":       "true",
		"berth.workspace":     spec.Workspace,
		"berth.workdir":       spec.Workdir,
		"berth.version":       "test",
		backendtest.LabelTest: t.Name(),
	}
	if diff := cmp.Diff(want, inst.Labels); diff != "" {
		t.Errorf("Labels (-want +got):\n%s", diff)
	}
	if inst.Image != spec.Image {
		t.Errorf("Image = %q, want %q", inst.Image, spec.Image)
	}
	if _, out, _ := run(t, b, inst.ID, backends.ExecSpec{Argv: []string{"sh", "-c", "echo $BERTH_GREETING"}}); out != "hi there\n" {
		t.Errorf("instance env: got %q", out)
	}
}

func TestExec(t *testing.T) {
	b := newBackend(t)
	spec := newSpec(t, b)
	inst := up(t, b, spec)
	tests := []struct {
		name   string
		spec   backends.ExecSpec
		code   int
		stdout string
		stderr string
	}{
		// The wrapper's setsid makes the command lead its own session and
		// group, which incus exec alone does not (pgid and sid are 0).
		{"leads its session", backends.ExecSpec{Argv: []string{"sh", "-c", `set -- $(cat /proc/$$/stat); [ "$1" = "$5" ] && [ "$1" = "$6" ] && echo leader`}}, 0, "leader\n", ""},
		{"default cwd is the workdir", backends.ExecSpec{Argv: []string{"pwd"}}, 0, spec.Workdir + "\n", ""},
		{"user gets its home", backends.ExecSpec{Argv: []string{"sh", "-c", "echo $HOME $USER; id -g"}, User: "user"}, 0, "/home/user user\n1000\n", ""},
		{"uid:group", backends.ExecSpec{Argv: []string{"id", "-g"}, User: "1000:nogroup"}, 0, "65534\n", ""},
		{"exit 127 is a code, not an error", backends.ExecSpec{Argv: []string{"sh", "-c", "echo still; exit 127"}}, 127, "still\n", ""},
		{"stderr without newline", backends.ExecSpec{Argv: []string{"sh", "-c", "printf x >&2; echo out"}}, 0, "out\n", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, b, inst.ID, tt.spec)
			if code != tt.code || out != tt.stdout || errOut != tt.stderr {
				t.Errorf("got code %d stdout %q stderr %q; want %d %q %q", code, out, errOut, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
	t.Run("concurrent use of one client", func(t *testing.T) {
		// Under -race this catches writes to the client's shared state.
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(2)
			go func() {
				defer wg.Done()
				var out bytes.Buffer
				p, err := b.Exec(ctxFor(t), inst.ID, backends.ExecSpec{Argv: []string{"echo", strconv.Itoa(i)}, Stdout: &out, Stderr: io.Discard})
				if err != nil {
					t.Error(err)
					return
				}
				if st, err := p.Wait(ctxFor(t)); err != nil || st.Code != 0 || out.String() != strconv.Itoa(i)+"\n" {
					t.Errorf("exec %d: %+v %v %q", i, st, err, out.String())
				}
			}()
			go func() {
				defer wg.Done()
				if _, err := b.List(ctxFor(t)); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	})
	t.Run("missing cwd", func(t *testing.T) {
		// incus exec alone would run the command in another directory.
		_, err := b.Exec(ctxFor(t), inst.ID, backends.ExecSpec{Argv: []string{"pwd"}, Cwd: "/no/such/dir", Stdout: io.Discard, Stderr: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "/no/such/dir") {
			t.Errorf("err = %v, want one naming the directory", err)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		_, err := b.Exec(ctxFor(t), inst.ID, backends.ExecSpec{Argv: []string{"true"}, User: "nobody-here", Stdout: io.Discard, Stderr: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "nobody-here") {
			t.Errorf("err = %v, want one naming the user", err)
		}
	})
	t.Run("stdin that never ends", func(t *testing.T) {
		// The process exits without reading; Wait must not hang on stdin.
		pr, pw := io.Pipe()
		defer pw.Close()
		code, _, _ := run(t, b, inst.ID, backends.ExecSpec{Argv: []string{"true"}, Stdin: pr})
		if code != 0 {
			t.Errorf("code %d", code)
		}
	})
}

func TestCopyToReplacesRunningBinary(t *testing.T) {
	b := newBackend(t)
	inst := up(t, b, newSpec(t, b))
	ctx := ctxFor(t)
	p, err := b.Exec(ctx, inst.ID, backends.ExecSpec{
		Argv:   []string{"sh", "-c", "cp /bin/busybox /tmp/sleep && exec /tmp/sleep 1000"},
		Stdout: io.Discard, Stderr: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	// Writing over a running executable fails with "text file busy" on
	// kernels before 6.11; a rename over it works everywhere.
	tarball := makeTar(t, []tar.Header{{Name: "sleep", Mode: 0o755, Size: 4}}, []string{"new\n"})
	if err := b.CopyTo(ctx, inst.ID, "/tmp", tarball); err != nil {
		t.Fatalf("CopyTo over a running binary: %v", err)
	}
	if _, out, _ := run(t, b, inst.ID, backends.ExecSpec{Argv: []string{"cat", "/tmp/sleep"}}); out != "new\n" {
		t.Errorf("/tmp/sleep = %q, want the new content", out)
	}
	// The old binary ran on until killed.
	if err := p.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := p.Wait(ctx); err != nil || st.Signal != "SIGKILL" {
		t.Errorf("Wait = %+v, %v; want killed by SIGKILL", st, err)
	}
}

func TestCopyTree(t *testing.T) {
	b := newBackend(t)
	inst := up(t, b, newSpec(t, b))
	ctx := ctxFor(t)
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	in := makeTar(t, []tar.Header{
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o750, Uid: 1000, Gid: 1000, ModTime: mtime},
		{Name: "d/f", Mode: 0o640, Size: 6, Uid: 1000, Gid: 65534, ModTime: mtime},
		{Name: "d/link", Typeflag: tar.TypeSymlink, Linkname: "f"},
		{Name: "d/sub/x.sh", Mode: 0o755, Size: 3, ModTime: mtime},
	}, []string{"", "hello\n", "", "ok\n"})
	if err := b.CopyTo(ctx, inst.ID, "/tmp", in); err != nil {
		t.Fatalf("CopyTo: %v", err)
	}
	_, out, _ := run(t, b, inst.ID, backends.ExecSpec{Argv: []string{"sh", "-c",
		"cd /tmp/d && stat -c '%n %a %u %g %Y' . f sub/x.sh && readlink link && cat link"}})
	want := fmt.Sprintf(". 750 1000 1000 %[1]d\nf 640 1000 65534 %[1]d\nsub/x.sh 755 0 0 %[1]d\nf\nhello\n", mtime.Unix())
	if out != want {
		t.Errorf("in the container:\n%s\nwant:\n%s", out, want)
	}

	rc, err := b.CopyFrom(ctx, inst.ID, "/tmp/d")
	if err != nil {
		t.Fatalf("CopyFrom: %v", err)
	}
	defer rc.Close()
	var got []string
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		got = append(got, fmt.Sprintf("%s %o %d:%d %q %q", hdr.Name, hdr.Mode&0o7777, hdr.Uid, hdr.Gid, hdr.Linkname, data))
	}
	wantFrom := []string{
		`d/ 750 1000:1000 "" ""`,
		`d/f 640 1000:65534 "" "hello\n"`,
		`d/link 777 0:0 "f" ""`,
		`d/sub/ 755 0:0 "" ""`,
		`d/sub/x.sh 755 0:0 "" "ok\n"`,
	}
	if diff := cmp.Diff(wantFrom, got); diff != "" {
		t.Errorf("CopyFrom entries (-want +got):\n%s", diff)
	}
	if _, err := b.CopyFrom(ctx, inst.ID, "/no/such"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("CopyFrom of a missing path: err = %v, want ErrNotFound", err)
	}
	if err := b.CopyTo(ctx, inst.ID, "/no/such", makeTar(t, nil, nil)); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("CopyTo into a missing dir: err = %v, want ErrNotFound", err)
	}
}

func makeTar(t *testing.T, hdrs []tar.Header, bodies []string) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range hdrs {
		if hdrs[i].Typeflag == 0 {
			hdrs[i].Typeflag = tar.TypeReg
		}
		if err := tw.WriteHeader(&hdrs[i]); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(bodies[i])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// No daemon needed: a socket that does not answer is ErrUnavailable, with
// a hint at how to start incusd.
func TestPingUnavailable(t *testing.T) {
	t.Setenv("BERTH_INCUS_REMOTE", "")
	t.Setenv("INCUS_SOCKET", filepath.Join(t.TempDir(), "no.socket"))
	b, err := incus.New(slog.New(slog.DiscardHandler), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Ping(context.Background())
	if !errors.Is(err, backends.ErrUnavailable) || !strings.Contains(err.Error(), "incusd") {
		t.Errorf("Ping = %v, want ErrUnavailable saying how to start incusd", err)
	}
	if _, err := b.List(context.Background()); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("List = %v, want ErrUnavailable", err)
	}
}

func TestFilesAndPlatform(t *testing.T) {
	b := newBackend(t)
	files := func(string) (io.Reader, error) {
		return makeTar(t, []tar.Header{
			{Name: ".berth/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: ".berth/hello", Mode: 0o755, Size: 3},
		}, []string{"", "hi\n"}), nil
	}
	tests := []struct {
		name     string
		platform string
		want     string
	}{
		{"written before the first start", "linux/" + runtime.GOARCH, "hi\n"},
		{"skipped for another platform", "linux/no-such-arch", "absent\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := newSpec(t, b)
			spec.Init = []string{"/.berth/hello"} // Incus boots the image's init
			spec.InitPlatforms = []string{tt.platform}
			spec.Files = files
			inst := up(t, b, spec)
			if _, out, _ := run(t, b, inst.ID, backends.ExecSpec{Argv: []string{"sh", "-c", "cat /.berth/hello 2>/dev/null || echo absent"}}); out != tt.want {
				t.Errorf("/.berth/hello: got %q, want %q", out, tt.want)
			}
			goos, goarch, err := b.Platform(ctxFor(t), inst.ID)
			if err != nil || goos != "linux" || goarch != runtime.GOARCH {
				t.Errorf("Platform = %s/%s, %v; want linux/%s", goos, goarch, err, runtime.GOARCH)
			}
		})
	}
}

func TestDirectExec(t *testing.T) {
	b := newBackend(t)
	inst := up(t, b, newSpec(t, b))
	ctx := ctxFor(t)

	t.Run("argv as is, user 0", func(t *testing.T) {
		code, out, errOut := run(t, b, inst.ID, backends.ExecSpec{Argv: []string{"sh", "-c", `echo "$0" $(id -u); echo e >&2`}, User: "0", Direct: true})
		if code != 0 || out != "sh 0\n" || errOut != "e\n" {
			t.Errorf("got %d %q %q", code, out, errOut)
		}
	})
	t.Run("kill drops the stream", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		var out bytes.Buffer
		p, err := b.Exec(ctx, inst.ID, backends.ExecSpec{Argv: []string{"cat"}, Direct: true, Stdin: pr, Stdout: &out, Stderr: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pw.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		if err := p.Signal(ctx, backends.SIGTERM); !errors.Is(err, backends.ErrNotSupported) {
			t.Errorf("Signal: err = %v, want ErrNotSupported", err)
		}
		if err := p.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		// cat sees its stdin end and exits by itself.
		st, err := p.Wait(ctx)
		if err != nil || st.Code != 0 || out.String() != "ping\n" {
			t.Errorf("Wait = %+v, %v, output %q; want 0 and ping", st, err, out.String())
		}
	})
	t.Run("missing executable", func(t *testing.T) {
		p, err := b.Exec(ctx, inst.ID, backends.ExecSpec{Argv: []string{"/no/such/agent", "serve"}, Direct: true, Stdout: io.Discard, Stderr: io.Discard})
		if err != nil {
			return // reported at once: fine too
		}
		if st, err := p.Wait(ctx); err == nil && st.Code != 127 {
			t.Errorf("Wait = %+v, want exit 127", st)
		}
	})
}
