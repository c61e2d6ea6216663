package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const value = "hunter2-s3cr3t"

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
		err  string // substring; "" for success
	}{
		{"object", `{"TOKEN": "` + value + `", "EMPTY": ""}`, map[string]string{"TOKEN": value, "EMPTY": ""}, ""},
		{"bom and space", "\ufeff \n{}\n", map[string]string{}, ""},
		{"escapes", `{"A": "a\"b\u00e9"}`, map[string]string{"A": "a\"b\u00e9"}, ""},
		{"number", `{"TOKEN": 12345}`, nil, `value of "TOKEN" must be a string`},
		{"null", `{"TOKEN": null}`, nil, `value of "TOKEN" must be a string`},
		{"nested", `{"TOKEN": {"x": "` + value + `"}}`, nil, `value of "TOKEN" must be a string`},
		{"array", `["` + value + `"]`, nil, "want a JSON object"},
		{"string", `"` + value + `"`, nil, "want a JSON object"},
		{"empty", ``, nil, "want a JSON object"},
		{"syntax", `{"TOKEN": "` + value + `",}`, nil, "not valid JSON"},
		{"trailing", `{"TOKEN": "` + value + `"} {}`, nil, "not valid JSON"},
		{"bad name", `{"A=B": "` + value + `"}`, nil, `"A=B" is not a valid environment variable name`},
		{"empty name", `{"": "` + value + `"}`, nil, `"" is not a valid`},
		{"NUL value", `{"A": "x\u0000` + value + `"}`, nil, `value of "A" contains a NUL byte`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("Parse (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrBadSecrets) || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Parse = %v, want ErrBadSecrets mentioning %q", err, tt.err)
			}
			if strings.Contains(err.Error(), value) {
				t.Errorf("the error %q shows the value", err)
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "secrets.json")
	if err := os.WriteFile(p, []byte(`{"TOKEN": "`+value+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if env, err := ReadFile(p); err != nil || env["TOKEN"] != value {
		t.Errorf("ReadFile = %v, %v", env, err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, bytes.Repeat([]byte(" "), MaxFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(big); !errors.Is(err, ErrBadSecrets) {
		t.Errorf("big file: %v", err)
	}
}

func TestMerge(t *testing.T) {
	got := Merge(map[string]string{"A": "1", "B": "1"}, nil, map[string]string{"B": "2"})
	if diff := cmp.Diff(map[string]string{"A": "1", "B": "2"}, got); diff != "" {
		t.Error(diff)
	}
	if Merge(nil, map[string]string{}) != nil {
		t.Error("Merge of nothing is not nil")
	}
}

func TestMasker(t *testing.T) {
	m := NewMasker()
	if got := m.Mask("x " + value); got != "x "+value {
		t.Errorf("empty masker changed %q", got)
	}
	release := m.Add(map[string]string{"A": value, "B": "a<b\"c", "C": "", "D": "s3cr3t"})
	tests := []struct{ in, want string }{
		{"token=" + value + ".", "token=" + Mask + "."},
		{value + value, Mask + Mask},
		{"s3cr3t", Mask},                                      // a value inside another is masked on its own
		{`{"text":"a\u003cb\"c"}`, `{"text":"` + Mask + `"}`}, // JSON, HTML-escaped
		{`{"text":"a<b\"c"}`, `{"text":"` + Mask + `"}`},      // JSON
		{"a<b\"c", Mask},
		{"nothing here", "nothing here"},
	}
	for _, tt := range tests {
		if got := m.Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	again := m.Add(map[string]string{"X": value})
	release()
	release() // once only
	if got := m.Mask(value + " s3cr3t"); got != Mask+" s3cr3t" {
		t.Errorf("after one release: %q, want the value still held by the second Add masked", got)
	}
	again()
	if got := m.Mask(value); got != value {
		t.Errorf("after every release: %q", got)
	}
	var nilMasker *Masker
	if nilMasker.Mask(value) != value {
		t.Error("a nil masker masks")
	}
	argv := []string{"echo", value}
	if got := m.MaskAll(argv); &got[0] != &argv[0] {
		t.Error("MaskAll copied with nothing to mask")
	}
	m.Add(map[string]string{"A": value})
	if got := m.MaskAll(argv); got[1] != Mask || argv[1] != value {
		t.Errorf("MaskAll = %q (argv now %q)", got, argv)
	}
}

type stringer struct{}

func (stringer) String() string { return "it is " + value }

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	m := NewMasker()
	m.Add(map[string]string{"A": value})
	base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log := Logger(base, m)
	if Logger(log, m) != log {
		t.Error("Logger wrapped a logger it already masks")
	}
	log = log.With("bound", "x"+value).WithGroup("g")
	log.Debug("message "+value,
		"s", value,
		"err", errors.New("failed: "+value),
		"argv", []string{"sh", "-c", value},
		"bytes", []byte(value),
		"stringer", stringer{},
		"n", 42,
		slog.Group("grp", "inner", value),
	)
	out := buf.String()
	if strings.Contains(out, value) || strings.Contains(out, "s3cr3t") {
		t.Errorf("log shows the value:\n%s", out)
	}
	for _, want := range []string{"message " + Mask, "bound=x" + Mask, "g.s=" + Mask, "g.n=42", "g.grp.inner=" + Mask} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestRedactJSON(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // "" means: the same as in
	}{
		{"initialize", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"initializationOptions":{"secrets":{"TOKEN":"` + value + `"},"image":"x"}}}`,
			`{"id":1,"jsonrpc":"2.0","method":"initialize","params":{"initializationOptions":{"image":"x","secrets":{"TOKEN":"` + Mask + `"}}}}`},
		{"case", `{"params":{"initializationOptions":{"SeCrEtS":{"T":"` + value + `"}}}}`, `{"params":{"initializationOptions":{"SeCrEtS":{"T":"` + Mask + `"}}}}`},
		{"escaped key", `{"secr\u0065ts":{"T":"` + value + `"}}`, `{"secrets":{"T":"` + Mask + `"}}`},
		{"kelvin", `{"S\u017fcrets":1,"secretſ":{"T":"` + value + `"}}`, `{"Sſcrets":1,"secretſ":{"T":"` + Mask + `"}}`},
		{"not an object", `{"secrets":"` + value + `"}`, `{"secrets":"` + Mask + `"}`},
		{"in an array", `[{"secrets":{"T":"` + value + `"}}]`, `[{"secrets":{"T":"` + Mask + `"}}]`},
		{"no secrets", `{"method":"berth/exec","params":{"argv":["ls"]}}`, ""},
		{"broken", `{"secrets":{"T":"` + value + `"}`, "(33 bytes withheld: not JSON, and may hold secrets)"},
		{"two values", `{"secrets":{}} {"secrets":{"T":"` + value + `"}}`, "(49 bytes withheld: not JSON, and may hold secrets)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == "" {
				want = tt.in
			}
			got := RedactJSON([]byte(tt.in))
			if got != want {
				t.Errorf("RedactJSON =\n%s\nwant\n%s", got, want)
			}
			if strings.Contains(got, value) {
				t.Errorf("shows the value")
			}
		})
	}
}

// FuzzRedactJSON checks that RedactJSON never panics, and that a secret's
// value, under any spelling of the key, never survives it.
func FuzzRedactJSON(f *testing.F) {
	f.Add("secrets", value, []byte(`{"a":[1,2]}`))
	f.Add("SECRETS", "\u2028<>&\"", []byte(`null`))
	f.Add("Secrets", "x", []byte(`{"secrets":"`))
	f.Fuzz(func(t *testing.T, key, val string, other []byte) {
		_ = RedactJSON(other)
		if !strings.EqualFold(key, "secrets") {
			return
		}
		msg, err := json.Marshal(map[string]any{"id": 1, "params": map[string]any{
			"initializationOptions": map[string]any{key: map[string]string{"N": val}},
		}})
		if err != nil {
			return
		}
		var got struct {
			Params struct {
				Opts map[string]map[string]string `json:"initializationOptions"`
			} `json:"params"`
		}
		out := RedactJSON(msg)
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("RedactJSON(%s) = %s: %v", msg, out, err)
		}
		if v := got.Params.Opts[key]["N"]; v != Mask {
			t.Fatalf("RedactJSON(%s) = %s: the value is %q", msg, out, v)
		}
	})
}

// FuzzParseSecrets checks that Parse never panics and that what it accepts
// passes Check.
func FuzzParseSecrets(f *testing.F) {
	for _, s := range []string{`{"A":"b"}`, `{}`, `{"A":1}`, `[]`, "\ufeff{\"\":\"\"}", `{"A":"\u0000"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrBadSecrets) {
				t.Fatalf("error %v does not wrap ErrBadSecrets", err)
			}
			return
		}
		if err := Check(env); err != nil {
			t.Fatalf("Parse accepted what Check refuses: %v", err)
		}
	})
}
