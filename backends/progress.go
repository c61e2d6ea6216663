package backends

import (
	"context"
	"fmt"
	"strings"
)

// ProgressFunc receives human-readable steps of a long operation, such as an
// image pull. It must not block for long.
type ProgressFunc func(message string)

// PullFunc receives the steps of an image pull as they come, for a
// terminal to draw as progress bars. It must not block for long.
type PullFunc func(PullEvent)

// PullEvent is one step of an image pull.
type PullEvent struct {
	Ref    string // the image being pulled
	Layer  string // the layer the step is about; "" for the image as a whole
	Status string // the engine's words: "Downloading", "Pull complete", ...
	// Current and Total count bytes of the layer's download or
	// extraction; Total is 0 when unknown.
	Current, Total int64
	// Done says the pull of Ref ended, well or not; no step follows.
	Done bool
}

// String is the step as one line.
func (e PullEvent) String() string {
	if e.Done {
		return fmt.Sprintf("pull %s: done", e.Ref)
	}
	s := strings.TrimSpace(e.Layer + " " + e.Status)
	if e.Total > 0 {
		s += fmt.Sprintf(" %.1f/%.1f MB", float64(e.Current)/1e6, float64(e.Total)/1e6)
	}
	return fmt.Sprintf("pull %s: %s", e.Ref, s)
}

type progressKey struct{}

// progress is what a context carries: where steps go, and where pull
// steps go when something draws them.
type progress struct {
	text ProgressFunc
	pull PullFunc
}

func progressOf(ctx context.Context) progress {
	p, _ := ctx.Value(progressKey{}).(progress)
	return p
}

// WithProgress returns a context whose long operations report to fn. Pull
// steps go to fn as lines too, unless WithPullProgress takes them.
func WithProgress(ctx context.Context, fn ProgressFunc) context.Context {
	p := progressOf(ctx)
	p.text = fn
	return context.WithValue(ctx, progressKey{}, p)
}

// WithPullProgress returns a context whose image pulls report their steps
// to fn, and not as lines to the ProgressFunc.
func WithPullProgress(ctx context.Context, fn PullFunc) context.Context {
	p := progressOf(ctx)
	p.pull = fn
	return context.WithValue(ctx, progressKey{}, p)
}

// Report sends a progress step to the context's ProgressFunc, if any.
func Report(ctx context.Context, format string, args ...any) {
	if fn := progressOf(ctx).text; fn != nil {
		fn(fmt.Sprintf(format, args...))
	}
}

// DrawsPulls says ReportPull goes to a PullFunc, which wants every byte
// count; lines want only changes of status.
func DrawsPulls(ctx context.Context) bool { return progressOf(ctx).pull != nil }

// ReportPull sends a pull step to the context's PullFunc, or as a line to
// its ProgressFunc when it has none.
func ReportPull(ctx context.Context, e PullEvent) {
	p := progressOf(ctx)
	switch {
	case p.pull != nil:
		p.pull(e)
	case p.text != nil:
		p.text(e.String())
	}
}

// AlsoReport returns ctx with fn receiving every step as well, pull steps
// as lines, before the receivers ctx already had. A watchdog uses it to
// see that work goes on.
func AlsoReport(ctx context.Context, fn ProgressFunc) context.Context {
	p := progressOf(ctx)
	prev, prevPull := p.text, p.pull
	p.text = func(msg string) {
		fn(msg)
		if prev != nil {
			prev(msg)
		}
	}
	if prevPull != nil {
		p.pull = func(e PullEvent) {
			fn(e.String())
			prevPull(e)
		}
	}
	return context.WithValue(ctx, progressKey{}, p)
}
