package backends

import (
	"context"
	"fmt"
)

// ProgressFunc receives human-readable steps of a long operation, such as an
// image pull. It must not block for long.
type ProgressFunc func(message string)

type progressKey struct{}

// WithProgress returns a context whose long operations report to fn.
func WithProgress(ctx context.Context, fn ProgressFunc) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

// Report sends a progress step to the context's ProgressFunc, if any.
func Report(ctx context.Context, format string, args ...any) {
	if fn, ok := ctx.Value(progressKey{}).(ProgressFunc); ok && fn != nil {
		fn(fmt.Sprintf(format, args...))
	}
}

// AlsoReport returns ctx with fn receiving every step as well, before the
// receiver ctx already had. A watchdog uses it to see that work goes on.
func AlsoReport(ctx context.Context, fn ProgressFunc) context.Context {
	prev, _ := ctx.Value(progressKey{}).(ProgressFunc)
	return WithProgress(ctx, func(msg string) {
		fn(msg)
		if prev != nil {
			prev(msg)
		}
	})
}
