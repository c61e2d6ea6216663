package session

import (
	"regexp"
	"testing"
)

// The regexp safeName stands for: instance names must never change.
var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

func FuzzSafeName(f *testing.F) {
	for _, s := range []string{"", "proj", "My Project!!", "a  b", "über", "\xff\xfe", "x\xffy", "-._", "日本語 dir", "a--b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := safeName(s), unsafeName.ReplaceAllString(s, "-"); got != want {
			t.Errorf("safeName(%q) = %q, want %q", s, got, want)
		}
	})
}
