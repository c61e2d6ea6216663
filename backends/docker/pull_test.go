package docker

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/backends"
)

// A pull's JSON stream becomes steps: every one for a terminal that draws
// them, a line per change of status otherwise, and its error message.
func TestFollowPull(t *testing.T) {
	const stream = `{"status":"Pulling from x/y","id":"1"}
{"status":"Pulling fs layer","id":"a1"}
{"status":"Downloading","progressDetail":{"current":100,"total":1000},"id":"a1"}
{"status":"Downloading","progressDetail":{"current":600,"total":1000},"id":"a1"}
{"status":"Pull complete","id":"a1"}
`
	tests := []struct {
		name    string
		stream  string
		draw    bool
		want    []string
		wantErr string
	}{
		{name: "lines", stream: stream, want: []string{
			"pull x/y:1: 1 Pulling from x/y", "pull x/y:1: a1 Pulling fs layer",
			"pull x/y:1: a1 Downloading 0.0/0.0 MB", "pull x/y:1: a1 Pull complete", "pull x/y:1: done"}},
		{name: "drawn", stream: stream, draw: true, want: []string{
			"pull x/y:1: 1 Pulling from x/y", "pull x/y:1: a1 Pulling fs layer",
			"pull x/y:1: a1 Downloading 0.0/0.0 MB", "pull x/y:1: a1 Downloading 0.0/0.0 MB",
			"pull x/y:1: a1 Pull complete", "pull x/y:1: done"}},
		{name: "error", stream: `{"status":"Pulling fs layer","id":"a1"}
{"errorDetail":{"message":"unauthorized"},"error":"unauthorized"}
`, want: []string{"pull x/y:1: a1 Pulling fs layer", "pull x/y:1: done"}, wantErr: "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			ctx := backends.WithProgress(context.Background(), func(m string) { got = append(got, m) })
			if tt.draw {
				ctx = backends.WithPullProgress(ctx, func(e backends.PullEvent) { got = append(got, e.String()) })
			}
			err := (&Backend{}).followPull(ctx, "x/y:1", strings.NewReader(tt.stream))
			if (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
		})
	}
}
