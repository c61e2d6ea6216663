package lsp

import (
	"bytes"
	"context"
	"path"
	"sync"

	"github.com/berthdev/berth/pathmap"
)

// maxSpellings bounds the URIs the rewriter remembers the editor's
// spelling of; past it, it starts again.
const maxSpellings = 1 << 16

// A Rewriter maps the URIs and paths in LSP messages between the editor
// (host) and the server (container). It is generic: every string in every
// message, of any method, that is a file URI under a mapped folder is
// rewritten, as are object keys (WorkspaceEdit.changes) and the glob
// patterns of file watchers. Document text (text, newText, insertText) is
// never rewritten. URIs go back to the editor spelled as the editor spelled
// them. Files only the container has reach the editor through the mirror.
//
// ToServer and ToEditor may be called from two goroutines at once.
type Rewriter struct {
	m      *pathmap.Mapper // the workspace's mounts
	sync   *pathmap.Mapper // its synced mounts, whose ignored files only the container has; nil without
	mirror *Mirror         // nil: container-only files stay container URIs
	exists func(hostPath string) bool

	mu       sync.Mutex        // guards spelling
	spelling map[string]string // container path -> the editor's URI for it, without query or fragment
}

// NewRewriter returns a rewriter for a workspace's mounts. syncMounts, if
// not nil, maps the mounts whose host side lacks what the sync ignores;
// exists reports whether a host file is there. mirror may be nil.
func NewRewriter(m, syncMounts *pathmap.Mapper, mirror *Mirror, exists func(string) bool) *Rewriter {
	return &Rewriter{m: m, sync: syncMounts, mirror: mirror, exists: exists, spelling: map[string]string{}}
}

// ToServer rewrites a message from the editor to the server. A message
// that is not JSON is returned as it is, with the error.
func (r *Rewriter) ToServer(msg []byte) ([]byte, error) {
	if !mayHaveURI(msg) {
		return msg, nil
	}
	found, err := scan(msg)
	if err != nil || len(found) == 0 {
		return msg, err
	}
	repl := make([]string, len(found))
	for k, c := range found {
		if pathKeys[c.key] && !c.isKey {
			continue // globs come from the server
		}
		repl[k] = r.uriToServer(c.s)
	}
	return splice(msg, found, repl), nil
}

func (r *Rewriter) uriToServer(s string) string {
	c, ok := r.m.ToContainer(s)
	if !ok && r.mirror != nil {
		c, ok = r.mirror.m.ToContainer(s)
	}
	if !ok {
		return ""
	}
	if cp, _, ok := pathmap.ParseFileURI(c); ok {
		editor, _, _ := cutSuffix(s)
		r.mu.Lock()
		if len(r.spelling) >= maxSpellings {
			clear(r.spelling)
		}
		r.spelling[path.Clean(cp)] = editor
		r.mu.Unlock()
	}
	if c == s {
		return ""
	}
	return c
}

// ToEditor rewrites a message from the server to the editor, mirroring
// the container-only files it names first (ctx bounds that).
func (r *Rewriter) ToEditor(ctx context.Context, msg []byte) ([]byte, error) {
	if !mayHaveURI(msg) && !hasGlob(msg) {
		return msg, nil
	}
	found, err := scan(msg)
	if err != nil || len(found) == 0 {
		return msg, err
	}
	repl := make([]string, len(found))
	var only []string // container paths of files only the container has
	for k, c := range found {
		if pathKeys[c.key] && !c.isKey {
			if !isFileURI([]byte(c.s)) {
				if h := r.m.RewriteToHost(c.s); h != c.s {
					repl[k] = h
				}
				continue
			}
		}
		p, _, ok := pathmap.ParseFileURI(c.s)
		if !ok {
			continue
		}
		p = path.Clean(p)
		if r.containerOnly(p) {
			only = append(only, p)
			continue
		}
		repl[k] = r.uriToEditor(c.s, p)
	}
	if len(only) > 0 && r.mirror != nil {
		have := r.mirror.Ensure(ctx, only)
		for k, c := range found {
			if repl[k] != "" {
				continue
			}
			p, _, ok := pathmap.ParseFileURI(c.s)
			if ok && have[path.Clean(p)] {
				repl[k] = r.mirrorURI(c.s, path.Clean(p))
			}
		}
	}
	return splice(msg, found, repl), nil
}

// containerOnly says p is a container path the editor can't open on the
// host: under no mount, or synced but ignored by the sync.
func (r *Rewriter) containerOnly(p string) bool {
	if _, ok := r.m.ToHost(p); !ok {
		return true
	}
	if r.sync == nil {
		return false
	}
	h, ok := r.sync.ToHost(p)
	return ok && !r.exists(h)
}

func (r *Rewriter) uriToEditor(s, p string) string {
	_, suffix, _ := cutSuffix(s)
	r.mu.Lock()
	editor, ok := r.spelling[p]
	r.mu.Unlock()
	if ok {
		return editor + suffix
	}
	h, ok := r.m.ToHost(s)
	if !ok || h == s {
		return ""
	}
	return h
}

func (r *Rewriter) mirrorURI(s, p string) string {
	_, suffix, _ := cutSuffix(s)
	r.mu.Lock()
	editor, ok := r.spelling[p]
	r.mu.Unlock()
	if ok {
		return editor + suffix
	}
	h, _ := r.mirror.m.ToHost(s)
	return h
}

// cutSuffix splits a URI at its query or fragment.
func cutSuffix(s string) (uri, suffix string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '?' || s[i] == '#' {
			return s[:i], s[i:], true
		}
	}
	return s, "", false
}

// mayHaveURI is a quick look for "file:" in any case, so that most
// messages (completions, hovers) skip the scan.
func mayHaveURI(msg []byte) bool {
	for i := 0; ; {
		k := bytes.IndexByte(msg[i:], ':')
		if k < 0 {
			return false
		}
		i += k + 1
		if i >= 5 && msg[i-5]|0x20 == 'f' && msg[i-4]|0x20 == 'i' && msg[i-3]|0x20 == 'l' && msg[i-2]|0x20 == 'e' {
			return true
		}
	}
}

func hasGlob(msg []byte) bool { return bytes.Contains(msg, []byte(`"globPattern"`)) }
