package marker

import (
	"bytes"
	"strings"
	"testing"
)

func TestWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		flush  bool
		out    string
		line   string
	}{
		{"marker dropped", []string{"berth-pid:7\nrest\n"}, false, "rest\n", "berth-pid:7"},
		{"split writes", []string{"berth-p", "id:7\n", "more"}, false, "more", "berth-pid:7"},
		{"not a marker", []string{"hello\nworld\n"}, false, "hello\nworld\n", "hello"},
		{"partial line flushed", []string{"oops"}, true, "oops", "oops"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			var line string
			m := New(&out, func(l string) bool { line = l; return strings.HasPrefix(l, "berth-") })
			for _, w := range tt.writes {
				if _, err := m.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			if tt.flush {
				m.Flush()
			}
			if first := m.First(); (first != "") == strings.HasPrefix(tt.line, "berth-") && tt.line != "" {
				t.Errorf("First() = %q for line %q", first, tt.line)
			}
			if out.String() != tt.out || line != tt.line {
				t.Errorf("out %q line %q; want %q %q", out.String(), line, tt.out, tt.line)
			}
		})
	}
}
