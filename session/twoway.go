package session

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
)

// Two-way sync, on when customizations.berth.sync.twoWay is true.
//
// The container side is watched by the agent: every syncPoll berth runs
// `berth-agent scan WORKDIR`, which lists the tree, and compares it with
// base, each path's state when it was last synced either way. A path that
// comes back is one that goes in (not ignored), or one that matches the
// "back" patterns even though ignored (build outputs). For such a path
// the container changed:
//   - the host copy is as last synced: the container's copy replaces it
//     (a file removed in the container is removed on the host);
//   - the host copy changed too (a conflict): the host copy stays and goes
//     in, and the container's is saved beside it as NAME.berth-conflict;
//   - never synced, on both sides and different (say, built on both): the
//     newer modification time wins.
//
// The same rule holds when the two changes race, closer than a scan: a
// flush tells the agent's sync stream the state each file had when last
// synced, and the agent keeps a file changed inside since as
// NAME.berth-conflict, which berth brings back (keepConflicts); a pull
// that finds the host's copy changed while it fetched writes the
// container's as NAME.berth-conflict (fetchOver).
//
// Writes to the host go through an os.Root on the workspace, so nothing
// the container names (a symlink, "..") reaches outside it.

// syncPoll is how often two-way sync scans the container.
const syncPoll = time.Second

// poll scans the container every syncPoll until Close.
func (s *syncer) poll() {
	defer s.wg.Done()
	t := time.NewTicker(syncPoll)
	defer t.Stop()
	said := "" // the last failure logged: a lasting one is logged once
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.life, time.Minute)
		st, err := s.pull(ctx)
		switch {
		case err != nil && ctx.Err() == nil && err.Error() != said:
			said = err.Error()
			s.c.log.Warn("sync: two-way scan failed; nothing comes back until it works", "workspace", s.ws, "err", err)
		case err == nil:
			said = ""
		}
		if st != (SyncStats{}) {
			s.c.log.Debug("synced back", "workspace", s.ws, "pulled", st.Pulled, "removed", st.Removed, "conflicts", st.Conflicts)
		}
		cancel()
	}
}

// comesBack says whether the container's rel may come back to the host.
func (s *syncer) comesBack(rel string, isDir bool, back gitignore.Matcher) bool {
	if strings.HasSuffix(rel, conflictSuffix) || strings.HasSuffix(rel, pullSuffix) {
		return false
	}
	parts := strings.Split(rel, "/")
	for _, p := range parts {
		if p == ".git" {
			return false
		}
	}
	if !s.ignored(rel, isDir) {
		return true
	}
	if back == nil {
		return false
	}
	for i := range parts {
		if back.Match(parts[:i+1], isDir || i < len(parts)-1) {
			return true
		}
	}
	return false
}

// backMatcher compiles the "back" patterns, relative to the workspace.
func (s *syncer) backMatcher() gitignore.Matcher {
	if len(s.opts.back) == 0 {
		return nil
	}
	ps := make([]gitignore.Pattern, 0, len(s.opts.back))
	for _, b := range s.opts.back {
		ps = append(ps, gitignore.ParsePattern(b, nil))
	}
	return gitignore.NewMatcher(ps)
}

// pullPlan is what one scan of the container calls for.
type pullPlan struct {
	alike     map[string]fileState // alike on both sides: base catches up
	pulls     []string             // copy to the host, sorted
	conflicts []string             // save the container's copy as NAME.berth-conflict
	pushes    []string             // copy the host's into the container
	gone      []string             // remove on the host, deepest first
}

// planPull compares the container's tree (cur) with base and the host, by the rules at the top of this file.
// host reads the host's state of a path; comesBack says a container path
// may come back.
func planPull(cur, base map[string]fileState, host func(string) (fileState, bool), comesBack func(string, bool) bool) pullPlan {
	p := pullPlan{alike: map[string]fileState{}}
	for rel, e := range cur {
		if !comesBack(rel, e.typ == 'd') {
			continue
		}
		b, synced := base[rel]
		if synced && b == e {
			continue
		}
		h, onHost := host(rel)
		switch {
		case onHost && h == e, e.typ == 'd' && onHost && h.typ == 'd':
			p.alike[rel] = h
		case !onHost && synced:
			// The host removed it; the next flush removes it inside.
		case !onHost:
			p.pulls = append(p.pulls, rel)
		case !synced && e.typ == 'f' && h.typ == 'f':
			if e.mtime > h.mtime {
				p.pulls = append(p.pulls, rel)
			} else {
				p.pushes = append(p.pushes, rel)
			}
		case synced && h == b:
			p.pulls = append(p.pulls, rel)
		default:
			// Changed on both sides: the host's copy wins.
			if e.typ == 'f' {
				p.conflicts = append(p.conflicts, rel)
			}
			p.pushes = append(p.pushes, rel)
		}
	}
	// Synced, gone from the container, and unchanged on the host since:
	// remove on the host.
	for rel, b := range base {
		if _, ok := cur[rel]; ok || !comesBack(rel, b.typ == 'd') {
			continue
		}
		if h, onHost := host(rel); onHost && (h == b || h.typ == 'd' && b.typ == 'd') {
			p.gone = append(p.gone, rel)
		}
	}
	sort.Strings(p.pulls) // directories before what they hold
	sort.Strings(p.conflicts)
	sort.Strings(p.pushes)
	sort.Sort(sort.Reverse(sort.StringSlice(p.gone)))
	return p
}

// pull scans the container once and brings its changes back, then sends
// in the host copies that won a conflict.
func (s *syncer) pull(ctx context.Context) (SyncStats, error) {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	r, err := s.c.ensure(ctx, s.c.Workspace(s.ws), s.image)
	if err != nil {
		return SyncStats{}, err
	}
	inst := r.Instance.Instance
	out, err := s.scan(ctx, inst)
	if err != nil {
		return SyncStats{}, err
	}
	cur, err := parseScan(out)
	if err != nil {
		return SyncStats{}, err
	}
	root, err := os.OpenRoot(s.ws)
	if err != nil {
		return SyncStats{}, fmt.Errorf("sync: %w", err)
	}
	defer root.Close()
	back := s.backMatcher()
	plan := planPull(cur, s.base, func(rel string) (fileState, bool) { return hostState(s.abs(rel)) },
		func(rel string, isDir bool) bool { return s.comesBack(rel, isDir, back) })
	for rel, st := range plan.alike {
		s.base[rel] = st
	}
	pulls, conflicts, pushes, gone := plan.pulls, plan.conflicts, plan.pushes, plan.gone
	var st SyncStats
	for _, rel := range pulls {
		was, onHost := hostState(s.abs(rel))
		kept, err := s.fetchOver(ctx, root, inst, rel, cur[rel], was, onHost)
		if err != nil {
			return st, err
		}
		if kept {
			// The host changed it while it came back: the host's copy
			// wins, and goes in.
			st.Conflicts++
			pushes = append(pushes, rel)
			continue
		}
		s.base[rel] = cur[rel]
		st.Pulled++
	}
	for _, rel := range conflicts {
		if err := s.fetch(ctx, root, inst, rel, rel+conflictSuffix, cur[rel]); err != nil {
			return st, err
		}
		st.Conflicts++
	}
	for _, rel := range gone {
		if err := root.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue // a directory the host added to: it stays
		}
		delete(s.base, rel)
		st.Removed++
	}
	if len(pushes) > 0 {
		s.mu.Lock()
		for _, rel := range pushes {
			s.changed[rel] = true
		}
		s.mu.Unlock()
		fl, err := s.flushLocked(ctx)
		st.add(fl)
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

// scanLimit bounds what one scan of the container may list: room for
// twice the files sync mode allows (directories list too) at 256 bytes a
// record, and never less than Run's cap.
func (s *syncer) scanLimit() int64 {
	return max(MaxRunOutput, 2*s.opts.maxFiles*256)
}

// scan lists the container's workspace (`berth-agent scan`) through the
// agent, read in full up to scanLimit rather than Run's 1 MB, which about
// 20,000 paths fill.
func (s *syncer) scan(ctx context.Context, inst backends.Instance) (string, error) {
	var ac *agent.Client
	if s.agentOf != nil {
		ac = s.agentOf(ctx)
	}
	if ac == nil {
		return "", fmt.Errorf("sync: scanning the container: two-way sync needs the agent")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	limit := s.scanLimit()
	var out strings.Builder
	over := false
	stdout := writerFunc(func(p []byte) (int, error) {
		if int64(out.Len()+len(p)) > limit {
			over = true
			return len(p), nil
		}
		return out.Write(p)
	})
	var stderr capped
	errw := writerFunc(func(p []byte) (int, error) { stderr.add(p); return len(p), nil })
	p, err := ac.Exec(ctx, backends.ExecSpec{Argv: []string{agent.InitPath, "scan", inst.Workdir}, User: "0:0", Helper: true, Stdout: stdout, Stderr: errw}, nil)
	if err != nil {
		return "", fmt.Errorf("sync: scanning the container: %w", err)
	}
	st, err := p.Wait(ctx)
	switch {
	case err != nil:
		return "", fmt.Errorf("sync: scanning the container: %w", err)
	case st.Code != 0:
		return "", fmt.Errorf("sync: scanning the container: %s", strings.TrimSpace(stderr.String()))
	case over:
		return "", fmt.Errorf("sync: the container's workspace lists more than %d bytes, past sync mode's maxFiles (%d): too large for two-way sync", limit, s.opts.maxFiles)
	}
	return out.String(), nil
}

// fetchOver is fetch of a pull, which replaces the host's rel, found
// before the fetch as was (onHost false: absent). If the host changed rel
// meanwhile, the container's copy is written as NAME.berth-conflict
// instead, and kept is true.
func (s *syncer) fetchOver(ctx context.Context, root *os.Root, inst backends.Instance, rel string, e fileState, was fileState, onHost bool) (kept bool, err error) {
	if e.typ != 'f' {
		return false, s.fetch(ctx, root, inst, rel, rel, e)
	}
	err = s.fetchAs(ctx, root, inst, rel, rel, e, func() string {
		now, ok := hostState(s.abs(rel))
		if ok != onHost || ok && now != was {
			kept = true
			return rel + conflictSuffix
		}
		return rel
	})
	return kept, err
}

func (s *syncer) abs(rel string) string { return s.ws + string(os.PathSeparator) + rel }

// fetch writes the container's rel to the host as dst, inside root, with
// the container's mode and modification time.
func (s *syncer) fetch(ctx context.Context, root *os.Root, inst backends.Instance, rel, dst string, e fileState) error {
	return s.fetchAs(ctx, root, inst, rel, dst, e, nil)
}

// fetchAs is fetch where final, if not nil, names a file's destination
// once its content is on the host, just before it takes that name.
func (s *syncer) fetchAs(ctx context.Context, root *os.Root, inst backends.Instance, rel, dst string, e fileState, final func() string) error {
	if dir := path.Dir(dst); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("sync: bringing back %s: %w", rel, err)
		}
	}
	switch e.typ {
	case 'd':
		if err := root.Mkdir(dst, e.perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("sync: bringing back %s: %w", rel, err)
		}
		return nil
	case 'l':
		_ = root.Remove(dst)
		if err := root.Symlink(e.link, dst); err != nil {
			return fmt.Errorf("sync: bringing back %s: %w", rel, err)
		}
		return nil
	}
	rc, err := s.b.CopyFrom(ctx, inst.ID, path.Join(inst.Workdir, rel))
	if errors.Is(err, backends.ErrNotFound) {
		return nil // gone since the scan: the next one sees it
	}
	if err != nil {
		return fmt.Errorf("sync: bringing back %s: %w", rel, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		return fmt.Errorf("sync: bringing back %s: %w", rel, err)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil // it changed type since the scan: the next one sees it
	}
	tmp := dst + pullSuffix
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("sync: bringing back %s: %w", rel, err)
	}
	_, err = io.Copy(f, tr)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Chmod(tmp, fs.FileMode(hdr.Mode).Perm())
	}
	if err == nil {
		mt := time.Unix(hdr.ModTime.Unix(), 0)
		err = root.Chtimes(tmp, mt, mt)
	}
	if err == nil && final != nil {
		dst = final()
	}
	if err == nil {
		err = root.Rename(tmp, dst)
	}
	if err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("sync: bringing back %s: %w", rel, err)
	}
	return nil
}

// parseScan reads `berth-agent scan`'s records (see cmd/berth-agent).
// The agent runs in the container, so every record is checked.
func parseScan(out string) (map[string]fileState, error) {
	m := map[string]fileState{}
	fields := strings.Split(out, "\x00")
	if len(fields) > 0 && fields[len(fields)-1] == "" {
		fields = fields[:len(fields)-1]
	}
	if len(fields)%3 != 0 {
		return nil, fmt.Errorf("sync: scan: %d fields, not records of 3", len(fields))
	}
	for i := 0; i < len(fields); i += 3 {
		head, rel, link := fields[i], fields[i+1], fields[i+2]
		var mode, size, mtime string
		if _, err := fmt.Sscan(head[min(1, len(head)):], &mode, &size, &mtime); err != nil || head == "" {
			return nil, fmt.Errorf("sync: scan: bad record %q", head)
		}
		perm, err1 := strconv.ParseUint(mode, 8, 32)
		sz, err2 := strconv.ParseInt(size, 10, 64)
		mt, err3 := strconv.ParseInt(mtime, 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil || sz < 0 || perm > 0o777 {
			return nil, fmt.Errorf("sync: scan: bad record %q", head)
		}
		if rel == "" || rel == "." || strings.HasPrefix(rel, "/") || path.Clean(rel) != rel || rel == ".." || strings.HasPrefix(rel, "../") {
			return nil, fmt.Errorf("sync: scan: bad path %q", rel)
		}
		st := fileState{typ: head[0], perm: fs.FileMode(perm)}
		switch st.typ {
		case 'f':
			st.size, st.mtime = sz, mt
		case 'd':
		case 'l':
			st.link, st.perm = link, 0
		default:
			return nil, fmt.Errorf("sync: scan: bad type in %q", head)
		}
		m[rel] = st
	}
	return m, nil
}
