package lsp

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"syscall"

	"github.com/berthdev/berth/backends"
)

// hostExec runs processes on the host, as if the host were the
// container: the unit tests' stand-in for the agent.
func hostExec(ctx context.Context, spec backends.ExecSpec) (backends.Process, error) {
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Dir = spec.Cwd
	cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stdin io.WriteCloser
	if spec.Stdin != nil {
		var err error
		if stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if stdin != nil {
		// As the agent's, Wait does not wait for this copy: it ends with
		// the reader or the process.
		go func() {
			_, _ = io.Copy(stdin, spec.Stdin)
			stdin.Close()
		}()
	}
	return &hostProc{cmd: cmd}, nil
}

type hostProc struct{ cmd *exec.Cmd }

func (p *hostProc) Wait(ctx context.Context) (backends.ExitStatus, error) {
	err := p.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return backends.ExitStatus{Code: 128 + int(ws.Signal()), Signal: ws.Signal().String()}, nil
		}
		return backends.ExitStatus{Code: ee.ExitCode()}, nil
	}
	return backends.ExitStatus{}, err
}

func (p *hostProc) Signal(ctx context.Context, sig int) error {
	return syscall.Kill(-p.cmd.Process.Pid, syscall.Signal(sig))
}

func (p *hostProc) Kill(ctx context.Context) error { return p.Signal(ctx, int(syscall.SIGKILL)) }
