package rpc

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAppendJSONString(t *testing.T) {
	tests := []string{
		"", "plain", "quote \" and backslash \\", "line\nfeed\r\ttab", "\x00\x01\x1f\x7f",
		"héllo wörld ✓ 🚀", "bad \xff utf-8 \xc3", "sep \u2028 \u2029", "<html>&amp;",
		strings.Repeat("a/b:12: x\n", 1000),
	}
	for _, s := range tests {
		got := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("%q: invalid JSON %s: %v", s, got, err)
			continue
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		// encoding/json replaces each invalid byte; ToValidUTF8 runs of them.
		var std string
		b, _ := json.Marshal(s)
		json.Unmarshal(b, &std)
		if back != std {
			t.Errorf("%q: round trip %q, encoding/json gives %q (valid form %q)", s, back, std, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("hello\n\"x\"\xff\u2028")
	f.Fuzz(func(t *testing.T, s string) {
		var back, std string
		if err := json.Unmarshal(appendJSONString(nil, s), &back); err != nil {
			t.Fatalf("invalid JSON for %q: %v", s, err)
		}
		b, _ := json.Marshal(s)
		json.Unmarshal(b, &std)
		if back != std {
			t.Fatalf("%q: got %q, encoding/json %q", s, back, std)
		}
	})
}
