package agent

import (
	"regexp"
	"testing"
)

// The regexp socketName stands for.
var socketNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func FuzzSocketName(f *testing.F) {
	for _, s := range []string{"", "a", "a-1.sock", ".x", "-x", "_x", "a/b", "../x", "a\x00", string(make([]byte, 64)), "a" + string(make([]byte, 63)), "é"} {
		f.Add(s)
	}
	f.Add("a123456789012345678901234567890123456789012345678901234567890123")  // 64
	f.Add("a1234567890123456789012345678901234567890123456789012345678901234") // 65
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := socketName.MatchString(s), socketNameRE.MatchString(s); got != want {
			t.Errorf("socketName(%q) = %v, want %v", s, got, want)
		}
	})
}
