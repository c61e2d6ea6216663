package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
)

// With a local engine the agent is a daemon of the instance's (door.go):
// berth runs the launcher (`agent door`) through the engine's exec with
// the door's request on stdin; the launcher starts the daemon in a session
// of its own, hands it the request, passes its reply back and exits. The
// exec ends at once, and the daemon outlives it and every berth process:
// the instance's init reaps it. It serves the door until the instance
// stops, or until another agent's door replaces its own and its last
// connection ends.

// launchTimeout bounds the daemon's answer to its launcher.
const launchTimeout = 10 * time.Second

// retireCheck is how often the daemon checks that its socket is still the
// door, and, once it isn't, whether its last connection has ended.
const retireCheck = 2 * time.Second

// Launch is the launcher: it reads the door request on stdin, starts the
// daemon (exe with args) in a session of its own, with the request on a
// pipe and nothing of the exec's, and writes its reply on stdout.
func Launch(ctx context.Context, stdin io.Reader, stdout io.Writer, exe string, args ...string) error {
	var req request
	if err := readJSONMax(stdin, frameRequest, &req, maxJSON); err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	fail := func(err error) error {
		_ = writeJSON(stdout, frameReply, reply{Error: "launch: " + err.Error()})
		return err
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer inW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		return fail(err)
	}
	defer outR.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fail(err)
	}
	defer devnull.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, devnull
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		return fail(err)
	}
	// Not waited for: it outlives us, and the instance's init reaps it.
	defer cmd.Process.Release()
	if err := writeJSON(inW, frameRequest, req); err != nil {
		_ = cmd.Process.Kill()
		return fail(err)
	}
	inW.Close()
	clear(req.Key)
	_ = outR.SetReadDeadline(time.Now().Add(launchTimeout))
	var rep reply
	if err := readJSONMax(outR, frameReply, &rep, maxJSON); err != nil {
		_ = cmd.Process.Kill()
		return fail(fmt.Errorf("the daemon did not answer: %w", err))
	}
	return writeJSON(stdout, frameReply, rep)
}

// Daemon is the agent on a local engine: it reads the door request its
// launcher passes on stdin, opens the door, answers on stdout, which it
// then closes, and serves the door's connections until ctx ends or another
// agent's door has replaced its own and its last connection has ended.
func Daemon(ctx context.Context, stdin io.Reader, stdout io.WriteCloser, log *slog.Logger, version string) error {
	return daemon(ctx, stdin, stdout, log, version, doorConfig{runDir: RunDir, privDir: DoorDir, initNS: inInitPidNS(), browseDir: BrowseDir, browserLink: BrowserPath})
}

func daemon(ctx context.Context, stdin io.Reader, stdout io.WriteCloser, log *slog.Logger, version string, cfg doorConfig) error {
	defer stdout.Close()
	var req request
	if err := readJSONMax(stdin, frameRequest, &req, maxJSON); err != nil {
		return fmt.Errorf("door: %w", err)
	}
	answer := func(rep reply) {
		_ = writeJSON(stdout, frameReply, rep)
		stdout.Close()
	}
	if req.Op != opDoor || !socketName.MatchString(req.Addr) || len(req.Key) != keySize {
		err := fmt.Errorf("door: want a plain socket name and a key of %d bytes", keySize)
		answer(reply{Error: err.Error()})
		return err
	}
	d, err := openDoor(cfg, req.Addr, req.Key, log)
	clear(req.Key)
	if err != nil {
		answer(reply{Error: "door: " + err.Error()})
		return err
	}
	answer(reply{Version: version, Proto: protoVersion, MinProto: minProto, PID: os.Getpid()})
	log.Info("door open", "socket", req.Addr, "pid", os.Getpid())
	s := newServer(log, version)
	if cfg.browseDir != "" {
		if stop, err := s.openBrowse(cfg.browseDir, cfg.browserLink); err != nil {
			log.Debug("no $BROWSER socket", "err", err)
		} else {
			defer stop()
		}
	}
	s.serveDoor(ctx, d)
	return nil
}

// serveDoor serves every connection that passes d until ctx ends, when it
// ends them all, or until d has been replaced and no connection is left.
func (s *Server) serveDoor(ctx context.Context, d *door) {
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			nc, err := d.Accept()
			if err != nil {
				return
			}
			sess, err := yamux.Server(newJoinedConn(nc), muxConfig())
			if err != nil {
				nc.Close()
				continue
			}
			s.log.Debug("connection up")
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.run(sess)
				s.log.Debug("connection closed; its processes ended")
			}()
		}
	}()
	defer s.wg.Wait()
	t := time.NewTicker(retireCheck)
	defer t.Stop()
	retired := false
	for {
		select {
		case <-ctx.Done():
			d.Close()
			<-accepting
			s.closeAll()
			return
		case <-t.C:
		}
		if !retired && !d.current() {
			// Another agent's door took over: let those who use this one
			// finish, and take no one new.
			s.log.Info("door replaced; ending after the last connection")
			retired = true
			d.Close()
			<-accepting
		}
		if retired && s.count() == 0 {
			return
		}
	}
}
