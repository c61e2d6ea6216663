package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Mask is what a secret's value becomes in berth's logs and reports.
const Mask = "********"

// Masker hides secret values in text. It is the one place berth masks:
// its slog handler covers every log line, --trace's frames included, and
// the protocol layer passes error messages and reports through it. It is
// safe for concurrent use.
//
// A value is found as it is, and as it appears inside a JSON string. A
// value that a process prints in two pieces, split across two output
// chunks, is not found.
type Masker struct {
	mu     sync.Mutex     // guards holds
	holds  map[string]int // value → how many Adds hold it
	masker atomic.Pointer[strings.Replacer]
}

// NewMasker returns a masker that masks nothing yet.
func NewMasker() *Masker { return &Masker{holds: map[string]int{}} }

// Add masks env's values from now on, until release is called.
func (m *Masker) Add(env map[string]string) (release func()) {
	var vals []string
	for _, v := range env {
		if v != "" {
			vals = append(vals, v)
		}
	}
	if len(vals) == 0 {
		return func() {}
	}
	m.mu.Lock()
	for _, v := range vals {
		m.holds[v]++
	}
	m.rebuild()
	m.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, v := range vals {
				if m.holds[v]--; m.holds[v] <= 0 {
					delete(m.holds, v)
				}
			}
			m.rebuild()
		})
	}
}

// rebuild makes the replacer for the values held; m.mu is held.
func (m *Masker) rebuild() {
	if len(m.holds) == 0 {
		m.masker.Store(nil)
		return
	}
	forms := map[string]bool{}
	for v := range m.holds {
		for _, f := range jsonForms(v) {
			forms[f] = true
		}
	}
	sorted := make([]string, 0, len(forms))
	for f := range forms {
		sorted = append(sorted, f)
	}
	// The replacer tries its patterns in order at each position: the
	// longest first, so a value that contains another is masked whole.
	sort.Slice(sorted, func(i, j int) bool {
		if len(sorted[i]) != len(sorted[j]) {
			return len(sorted[i]) > len(sorted[j])
		}
		return sorted[i] < sorted[j]
	})
	pairs := make([]string, 0, 2*len(sorted))
	for _, f := range sorted {
		pairs = append(pairs, f, Mask)
	}
	m.masker.Store(strings.NewReplacer(pairs...))
}

// jsonForms returns v and the forms it takes inside a JSON string, as
// encoding/json writes it with and without HTML escaping.
func jsonForms(v string) []string {
	out := []string{v}
	for _, html := range []bool{true, false} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(html)
		if enc.Encode(v) != nil {
			continue
		}
		q := strings.TrimSuffix(buf.String(), "\n")
		if f := q[1 : len(q)-1]; f != v && f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Mask returns s with every secret value replaced by Mask.
func (m *Masker) Mask(s string) string {
	if m == nil {
		return s
	}
	r := m.masker.Load()
	if r == nil {
		return s
	}
	return r.Replace(s)
}

// MaskAll masks each string of ss, returning ss itself when none changes.
func (m *Masker) MaskAll(ss []string) []string {
	var out []string
	for i, s := range ss {
		if ms := m.Mask(s); ms != s {
			if out == nil {
				out = append([]string(nil), ss...)
			}
			out[i] = ms
		}
	}
	if out == nil {
		return ss
	}
	return out
}

// Logger returns log with every record masked by m: its message and its
// attributes, whatever their type. A logger m already masks is returned
// as it is.
func Logger(log *slog.Logger, m *Masker) *slog.Logger {
	if h, ok := log.Handler().(handler); ok && h.m == m {
		return log
	}
	return slog.New(handler{h: log.Handler(), m: m})
}

// handler masks records before its inner handler formats them.
type handler struct {
	h slog.Handler
	m *Masker
}

func (h handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	if h.m.masker.Load() == nil {
		return h.h.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, h.m.Mask(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

// WithAttrs masks the attributes with the values known now: a secret added
// later is not masked in them. berth binds no secret-bearing attributes.
func (h handler) WithAttrs(as []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(as))
	for i, a := range as {
		masked[i] = h.attr(a)
	}
	return handler{h: h.h.WithAttrs(masked), m: h.m}
}

func (h handler) WithGroup(name string) slog.Handler {
	return handler{h: h.h.WithGroup(name), m: h.m}
}

func (h handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.m.Mask(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, ga := range g {
			out[i] = h.attr(ga)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if b, ok := v.Any().([]byte); ok {
			if s := string(b); h.m.Mask(s) != s {
				return slog.String(a.Key, h.m.Mask(s))
			}
			break
		}
		// An error, argv or any other value: masked as the text a
		// handler would write, and kept as it is when that holds none.
		s := fmt.Sprintf("%+v", v.Any())
		if ms := h.m.Mask(s); ms != s {
			return slog.String(a.Key, ms)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// RedactJSON returns a JSON message with the values of every "secrets"
// object in it (the key matched as encoding/json matches field names,
// ignoring case and escapes) replaced by Mask, for a trace of the frames
// that carry secrets before anyone has added them to a Masker. Text that is
// not JSON is withheld whole if it might hold secrets.
func RedactJSON(msg []byte) string {
	if !mayHoldSecrets(msg) {
		return string(msg)
	}
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return fmt.Sprintf("(%d bytes withheld: not JSON, and may hold secrets)", len(msg))
	}
	out, err := json.Marshal(redact(v))
	if err != nil {
		return fmt.Sprintf("(%d bytes withheld: may hold secrets)", len(msg))
	}
	return string(out)
}

// mayHoldSecrets reports whether msg may name a "secrets" key: in any case,
// or written with escapes.
func mayHoldSecrets(msg []byte) bool {
	return bytes.Contains(bytes.ToLower(msg), []byte("secrets")) || bytes.Contains(msg, []byte(`\u`)) ||
		bytes.ContainsRune(msg, '\u017f') || bytes.ContainsRune(msg, '\u212a') // ſ and K fold to s and k
}

func redact(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if strings.EqualFold(k, "secrets") {
				v[k] = redactAll(e)
				continue
			}
			v[k] = redact(e)
		}
	case []any:
		for i, e := range v {
			v[i] = redact(e)
		}
	}
	return v
}

// redactAll keeps an object's keys, the variables' names, and masks the rest.
func redactAll(v any) any {
	obj, ok := v.(map[string]any)
	if !ok {
		return Mask
	}
	for k := range obj {
		obj[k] = Mask
	}
	return obj
}
