package tools

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParsePytestCollect(t *testing.T) {
	out := strings.Join([]string{
		"berth-collect\tfile\ttests/test_calc.py\t/w/p/tests/test_calc.py\t0",
		"berth-collect\ttest\ttests/test_calc.py::test_add\t/w/p/tests/test_calc.py\t6",
		"berth-collect\tclass\ttests/test_calc.py::TestC\t/w/p/tests/test_calc.py\t10",
		"berth-collect\ttest\ttests/test_calc.py::TestC::test_y[a::b-1]\t/w/p/tests/test_calc.py\t12",
		"berth-collect\ttest\ttests/test_calc.py::TestC::test_z\t/w/p/tests/test_calc.py\t-1",
		"tests/test_calc.py::test_add", // pytest's own -q line
		"",
		"3 tests collected in 0.01s",
	}, "\n")
	got, err := ParsePytestCollect([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	f := "/w/p/tests/test_calc.py"
	want := []DiscoveredTest{
		{ID: "tests/test_calc.py", Name: "test_calc.py", Kind: KindFile, File: f, Line: 1},
		{ID: "tests/test_calc.py::test_add", Name: "test_add", Kind: KindTest, Parent: "tests/test_calc.py", File: f, Line: 7},
		{ID: "tests/test_calc.py::TestC", Name: "TestC", Kind: KindClass, Parent: "tests/test_calc.py", File: f, Line: 11},
		{ID: "tests/test_calc.py::TestC::test_y[a::b-1]", Name: "test_y[a::b-1]", Kind: KindTest, Parent: "tests/test_calc.py::TestC", File: f, Line: 13},
		{ID: "tests/test_calc.py::TestC::test_z", Name: "test_z", Kind: KindTest, Parent: "tests/test_calc.py::TestC", File: f},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParsePytestCollect (-want +got):\n%s", diff)
	}
	if _, err := ParsePytestCollect([]byte("berth-collect\tfile\tonly-two")); !errors.Is(err, ErrBadReport) {
		t.Errorf("short line: %v, want ErrBadReport", err)
	}
}

func TestParseGoList(t *testing.T) {
	out := strings.Join([]string{
		`{"Action":"start","Package":"example.com/calc"}`,
		`{"Action":"output","Package":"example.com/calc","Output":"TestAdd\n"}`,
		`{"Action":"output","Package":"example.com/calc","Output":"BenchmarkAdd\n"}`,
		`{"Action":"output","Package":"example.com/calc","Output":"ExampleAdd\n"}`,
		`{"Action":"output","Package":"example.com/calc","Output":"ok  \texample.com/calc\t0.002s\n"}`,
		`{"Action":"pass","Package":"example.com/calc"}`,
		`{"Action":"output","Package":"example.com/calc/none","Output":"?   \texample.com/calc/none\t[no test files]\n"}`,
		`{"Action":"skip","Package":"example.com/calc/none"}`,
	}, "\n")
	funcs := map[string]FuncLoc{"example.com/calc.TestAdd": {File: "/w/calc_test.go", Line: 5}}
	got, err := ParseGoList([]byte(out), funcs)
	if err != nil {
		t.Fatal(err)
	}
	want := []DiscoveredTest{
		{ID: "example.com/calc", Name: "example.com/calc", Kind: KindPackage},
		{ID: "example.com/calc.TestAdd", Name: "TestAdd", Kind: KindTest, Parent: "example.com/calc", File: "/w/calc_test.go", Line: 5},
		{ID: "example.com/calc.ExampleAdd", Name: "ExampleAdd", Kind: KindTest, Parent: "example.com/calc"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseGoList (-want +got):\n%s", diff)
	}

	broken := "# example.com/calc\n./calc.go:3:23: undefined: x\n" +
		`{"Action":"output","Package":"example.com/calc","Output":"FAIL\texample.com/calc [build failed]\n"}` + "\n" +
		`{"Action":"fail","Package":"example.com/calc"}`
	if _, err := ParseGoList([]byte(broken), nil); !errors.Is(err, ErrBadReport) || !strings.Contains(err.Error(), "undefined: x") {
		t.Errorf("build failure: %v, want ErrBadReport with the compiler's message", err)
	}
	if got, err := ParseGoList(nil, nil); err != nil || len(got) != 0 {
		t.Errorf("no output: %v, %v", got, err)
	}
}

func TestParseGoFuncs(t *testing.T) {
	out := strings.Join([]string{
		"/w/calc/calc_test.go:5:func TestAdd(t *testing.T) {",
		"/w/calc/calc_test.go:9:func FuzzAdd(f *testing.F) {",
		"/w/calc/calc_test.go:12:func TestGeneric[T any](t *testing.T) {",
		"/w/calc/sub/sub_test.go:3:func TestSub(t *testing.T) {", // another package's directory
		"/w/calc/calc_test.go:14:func Testify() {}",
		"grep: /w/x: No such file or directory",
	}, "\n")
	got := ParseGoFuncs([]byte(out), map[string]string{"example.com/calc": "/w/calc", "example.com/calc/sub": "/w/calc/sub"})
	want := map[string]FuncLoc{
		"example.com/calc.TestAdd":     {"/w/calc/calc_test.go", 5},
		"example.com/calc.FuzzAdd":     {"/w/calc/calc_test.go", 9},
		"example.com/calc.TestGeneric": {"/w/calc/calc_test.go", 12},
		"example.com/calc/sub.TestSub": {"/w/calc/sub/sub_test.go", 3},
		"example.com/calc.Testify":     {"/w/calc/calc_test.go", 14},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseGoFuncs (-want +got):\n%s", diff)
	}
}

func TestSplitGoTestID(t *testing.T) {
	tests := []struct{ id, pkg, test string }{
		{"example.com/calc.TestAdd", "example.com/calc", "TestAdd"},
		{"example.com/calc", "example.com/calc", ""},
		{"gopkg.in/yaml.v3", "gopkg.in/yaml.v3", ""},
		{"gopkg.in/yaml.v3.TestX", "gopkg.in/yaml.v3", "TestX"},
		{"example.com/calc.TestTable/a.b/c", "example.com/calc", "TestTable/a.b/c"},
		{"calc.FuzzAdd", "calc", "FuzzAdd"},
	}
	for _, tt := range tests {
		pkg, test := SplitGoTestID(tt.id)
		if pkg != tt.pkg || test != tt.test {
			t.Errorf("SplitGoTestID(%q) = %q, %q; want %q, %q", tt.id, pkg, test, tt.pkg, tt.test)
		}
	}
}

func TestGoRunSelection(t *testing.T) {
	tests := []struct {
		name    string
		ids     []string
		pkgs    []string
		run     string
		wantErr bool
	}{
		{name: "one test", ids: []string{"ex.com/calc.TestAdd"}, pkgs: []string{"ex.com/calc"}, run: "^(TestAdd)$"},
		{name: "two tests", ids: []string{"ex.com/calc.TestA", "ex.com/calc.TestB"}, pkgs: []string{"ex.com/calc"}, run: "^(TestA|TestB)$"},
		{name: "a subtest", ids: []string{"ex.com/calc.TestT/bad+1"}, pkgs: []string{"ex.com/calc"}, run: `^(TestT)$/^(bad\+1)$`},
		{name: "two packages", ids: []string{"ex.com/a.TestA", "ex.com/b.TestB"}, pkgs: []string{"ex.com/a", "ex.com/b"}, run: "^(TestA|TestB)$"},
		{name: "whole package", ids: []string{"ex.com/a"}, pkgs: []string{"ex.com/a"}},
		{name: "whole package and its own test", ids: []string{"ex.com/a", "ex.com/a.TestA"}, pkgs: []string{"ex.com/a"}},
		{name: "whole package beside another's test", ids: []string{"ex.com/a", "ex.com/b.TestB"}, wantErr: true},
		{name: "empty id", ids: []string{""}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, run, err := GoRunSelection(tt.ids)
			if tt.wantErr {
				if !errors.Is(err, ErrBadRequest) {
					t.Errorf("err = %v, want ErrBadRequest", err)
				}
				return
			}
			if err != nil || run != tt.run || !cmp.Equal(pkgs, tt.pkgs) {
				t.Errorf("GoRunSelection = %q, %q, %v; want %q, %q", pkgs, run, err, tt.pkgs, tt.run)
			}
		})
	}
}

func TestDebugTestArgv(t *testing.T) {
	tests := []struct {
		name    string
		req     DebugRequest
		want    []string
		wantErr bool
	}{
		{
			name: "pytest under debugpy",
			req:  DebugRequest{Adapter: "debugpy", Port: 5678, Test: true, Args: []string{"-x"}, Tests: []string{"tests/t.py::TestC::test_y"}},
			want: []string{"python3", "-m", "debugpy", "--listen", "127.0.0.1:5678", "--wait-for-client", "-m", "pytest", "-x", "tests/t.py::TestC::test_y"},
		},
		{
			name: "dlv test of one test",
			req:  DebugRequest{Adapter: "delve", Port: 5679, Test: true, Tests: []string{"ex.com/calc.TestAdd"}},
			want: []string{"dlv", "test", "ex.com/calc", "--headless", "--listen=127.0.0.1:5679", "--api-version=2", "--", "-test.run", "^(TestAdd)$"},
		},
		{
			name: "dlv test of a package directory",
			req:  DebugRequest{Adapter: "delve", Port: 5679, Test: true, Program: "/w/calc"},
			want: []string{"dlv", "test", "/w/calc", "--headless", "--listen=127.0.0.1:5679", "--api-version=2"},
		},
		{name: "delve: two packages", req: DebugRequest{Adapter: "delve", Port: 1, Test: true, Tests: []string{"a.TestA", "b.TestB"}}, wantErr: true},
		{name: "delve: nothing to test", req: DebugRequest{Adapter: "delve", Port: 1, Test: true}, wantErr: true},
		{name: "debugpy: a program", req: DebugRequest{Adapter: "debugpy", Port: 1, Test: true, Program: "/w/app.py"}, wantErr: true},
		{name: "custom", req: DebugRequest{Adapter: "custom", Command: []string{"x"}, Test: true}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DebugServerArgv(tt.req)
			if tt.wantErr {
				if !errors.Is(err, ErrBadRequest) {
					t.Errorf("err = %v, want ErrBadRequest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DebugServerArgv (-want +got):\n%s", diff)
			}
		})
	}
	cfg := AttachConfig(DebugRequest{Adapter: "delve", Test: true, Tests: []string{"ex.com/calc.TestAdd"}}, "", 4000, nil, "/w", true)
	if cfg["mode"] != "remote" || cfg["request"] != "attach" || cfg["program"] != "ex.com/calc" || cfg["name"] != "berth: TestAdd" {
		t.Errorf("delve test attach = %v", cfg)
	}
}
