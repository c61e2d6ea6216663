package lsp

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/pathmap"
)

func testMapper(t *testing.T) *pathmap.Mapper {
	t.Helper()
	m, err := pathmap.New(pathmap.Posix, []pathmap.Mount{{Host: "/home/me/proj", Container: "/workspaces/proj"}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// canon re-encodes JSON so that tests compare meaning, not spacing.
func canon(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	b, _ := json.MarshalIndent(v, "", " ")
	return string(b)
}

func TestToServer(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{{
		name: "didOpen: uri mapped, text kept even when it holds a URI",
		in:   `{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///home/me/proj/a.py","languageId":"python","version":1,"text":"# see file:///home/me/proj/b.py\n"}}}`,
		want: `{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///workspaces/proj/a.py","languageId":"python","version":1,"text":"# see file:///home/me/proj/b.py\n"}}}`,
	}, {
		name: "didChange: contentChanges text kept",
		in:   `{"jsonrpc":"2.0","method":"textDocument/didChange","params":{"textDocument":{"uri":"file:///home/me/proj/a.py","version":2},"contentChanges":[{"range":{"start":{"line":0,"character":0},"end":{"line":0,"character":0}},"text":"file:///home/me/proj/x"}]}}`,
		want: `{"jsonrpc":"2.0","method":"textDocument/didChange","params":{"textDocument":{"uri":"file:///workspaces/proj/a.py","version":2},"contentChanges":[{"range":{"start":{"line":0,"character":0},"end":{"line":0,"character":0}},"text":"file:///home/me/proj/x"}]}}`,
	}, {
		name: "initialize: rootUri and workspaceFolders",
		in:   `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":null,"rootUri":"file:///home/me/proj","workspaceFolders":[{"uri":"file:///home/me/proj","name":"proj"}],"capabilities":{}}}`,
		want: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":null,"rootUri":"file:///workspaces/proj","workspaceFolders":[{"uri":"file:///workspaces/proj","name":"proj"}],"capabilities":{}}}`,
	}, {
		name: "didChangeWatchedFiles",
		in:   `{"jsonrpc":"2.0","method":"workspace/didChangeWatchedFiles","params":{"changes":[{"uri":"file:///home/me/proj/go.mod","type":2}]}}`,
		want: `{"jsonrpc":"2.0","method":"workspace/didChangeWatchedFiles","params":{"changes":[{"uri":"file:///workspaces/proj/go.mod","type":2}]}}`,
	}, {
		name: "a method nobody knows, URIs deep in arrays",
		in:   `{"jsonrpc":"2.0","id":"x","method":"acme/frob","params":[[{"deep":["file:///home/me/proj/d%20e.py#L3"]}],"file:///etc/passwd"]}`,
		want: `{"jsonrpc":"2.0","id":"x","method":"acme/frob","params":[[{"deep":["file:///workspaces/proj/d%20e.py#L3"]}],"file:///etc/passwd"]}`,
	}, {
		name: "executeCommand arguments",
		in:   `{"jsonrpc":"2.0","id":4,"method":"workspace/executeCommand","params":{"command":"gopls.tidy","arguments":[{"URIs":["file:///home/me/proj/go.mod"]}]}}`,
		want: `{"jsonrpc":"2.0","id":4,"method":"workspace/executeCommand","params":{"command":"gopls.tidy","arguments":[{"URIs":["file:///workspaces/proj/go.mod"]}]}}`,
	}, {
		name: "a response to workspace/configuration",
		in:   `{"jsonrpc":"2.0","id":7,"result":[{"pythonPath":"/usr/bin/python3","root":"file:///home/me/proj/sub"}]}`,
		want: `{"jsonrpc":"2.0","id":7,"result":[{"pythonPath":"/usr/bin/python3","root":"file:///workspaces/proj/sub"}]}`,
	}, {
		name: "a completion item's insertText and a code action's newText are text",
		in:   `{"jsonrpc":"2.0","id":9,"method":"completionItem/resolve","params":{"label":"x","insertText":"file:///home/me/proj/a","textEdit":{"newText":"file:///home/me/proj/a"}}}`,
		want: `{"jsonrpc":"2.0","id":9,"method":"completionItem/resolve","params":{"label":"x","insertText":"file:///home/me/proj/a","textEdit":{"newText":"file:///home/me/proj/a"}}}`,
	}, {
		name: "outside every mount: as it is",
		in:   `{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///tmp/scratch.py","text":""}}}`,
		want: `{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///tmp/scratch.py","text":""}}}`,
	}, {
		name: "cancelRequest",
		in:   `{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":12}}`,
		want: `{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":12}}`,
	}, {
		name: "escapes in strings",
		in:   `{"jsonrpc":"2.0","method":"x","params":{"a":"q\"uote\\","uri":"file:\/\/\/home\/me\/proj\/a.py","u":"\u00e9"}}`,
		want: `{"jsonrpc":"2.0","method":"x","params":{"a":"q\"uote\\","uri":"file:///workspaces/proj/a.py","u":"é"}}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRewriter(testMapper(t), nil, nil, nil)
			got, err := r.ToServer([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(canon(t, tt.want), canon(t, string(got))); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestToEditor(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{{
		name: "definition: Location[]",
		in:   `{"jsonrpc":"2.0","id":3,"result":[{"uri":"file:///workspaces/proj/pkg/mod.py","range":{"start":{"line":0,"character":4},"end":{"line":0,"character":10}}}]}`,
		want: `{"jsonrpc":"2.0","id":3,"result":[{"uri":"file:///home/me/proj/pkg/mod.py","range":{"start":{"line":0,"character":4},"end":{"line":0,"character":10}}}]}`,
	}, {
		name: "definition: LocationLink[]",
		in:   `{"jsonrpc":"2.0","id":3,"result":[{"targetUri":"file:///workspaces/proj/a.go","targetRange":{},"targetSelectionRange":{}}]}`,
		want: `{"jsonrpc":"2.0","id":3,"result":[{"targetUri":"file:///home/me/proj/a.go","targetRange":{},"targetSelectionRange":{}}]}`,
	}, {
		name: "rename: changes keyed by URIs, newText kept",
		in:   `{"jsonrpc":"2.0","id":5,"result":{"changes":{"file:///workspaces/proj/a.py":[{"range":{},"newText":"file:///workspaces/proj/x"}],"file:///workspaces/proj/b.py":[]}}}`,
		want: `{"jsonrpc":"2.0","id":5,"result":{"changes":{"file:///home/me/proj/a.py":[{"range":{},"newText":"file:///workspaces/proj/x"}],"file:///home/me/proj/b.py":[]}}}`,
	}, {
		name: "documentChanges: edits, create, rename, delete",
		in: `{"jsonrpc":"2.0","id":"r","method":"workspace/applyEdit","params":{"label":"move","edit":{"documentChanges":[
			{"textDocument":{"uri":"file:///workspaces/proj/a.py","version":3},"edits":[{"range":{},"newText":"import b"}]},
			{"kind":"create","uri":"file:///workspaces/proj/new.py","options":{"overwrite":false}},
			{"kind":"rename","oldUri":"file:///workspaces/proj/old.py","newUri":"file:///workspaces/proj/sub/old.py"},
			{"kind":"delete","uri":"file:///workspaces/proj/gone","options":{"recursive":true}}]}}}`,
		want: `{"jsonrpc":"2.0","id":"r","method":"workspace/applyEdit","params":{"label":"move","edit":{"documentChanges":[
			{"textDocument":{"uri":"file:///home/me/proj/a.py","version":3},"edits":[{"range":{},"newText":"import b"}]},
			{"kind":"create","uri":"file:///home/me/proj/new.py","options":{"overwrite":false}},
			{"kind":"rename","oldUri":"file:///home/me/proj/old.py","newUri":"file:///home/me/proj/sub/old.py"},
			{"kind":"delete","uri":"file:///home/me/proj/gone","options":{"recursive":true}}]}}}`,
	}, {
		name: "registerCapability: file watchers, glob strings and RelativePatterns",
		in: `{"jsonrpc":"2.0","id":1,"method":"client/registerCapability","params":{"registrations":[{"id":"w","method":"workspace/didChangeWatchedFiles","registerOptions":{"watchers":[
			{"globPattern":"**/*.py"},
			{"globPattern":"/workspaces/proj/**/*.{go,mod}","kind":7},
			{"globPattern":{"baseUri":"file:///workspaces/proj/src","pattern":"**/*.go"}},
			{"globPattern":{"baseUri":{"uri":"file:///workspaces/proj","name":"proj"},"pattern":"go.work"}}]}}]}}`,
		want: `{"jsonrpc":"2.0","id":1,"method":"client/registerCapability","params":{"registrations":[{"id":"w","method":"workspace/didChangeWatchedFiles","registerOptions":{"watchers":[
			{"globPattern":"**/*.py"},
			{"globPattern":"/home/me/proj/**/*.{go,mod}","kind":7},
			{"globPattern":{"baseUri":"file:///home/me/proj/src","pattern":"**/*.go"}},
			{"globPattern":{"baseUri":{"uri":"file:///home/me/proj","name":"proj"},"pattern":"go.work"}}]}}]}}`,
	}, {
		name: "workspace/configuration scopeUri",
		in:   `{"jsonrpc":"2.0","id":2,"method":"workspace/configuration","params":{"items":[{"scopeUri":"file:///workspaces/proj/a.py","section":"pylsp"}]}}`,
		want: `{"jsonrpc":"2.0","id":2,"method":"workspace/configuration","params":{"items":[{"scopeUri":"file:///home/me/proj/a.py","section":"pylsp"}]}}`,
	}, {
		name: "window/showDocument",
		in:   `{"jsonrpc":"2.0","id":3,"method":"window/showDocument","params":{"uri":"file:///workspaces/proj/README.md","takeFocus":true}}`,
		want: `{"jsonrpc":"2.0","id":3,"method":"window/showDocument","params":{"uri":"file:///home/me/proj/README.md","takeFocus":true}}`,
	}, {
		name: "documentLink targets keep their fragment",
		in:   `{"jsonrpc":"2.0","id":4,"result":[{"range":{},"target":"file:///workspaces/proj/a.go#L12"},{"range":{},"target":"https://pkg.go.dev/fmt"}]}`,
		want: `{"jsonrpc":"2.0","id":4,"result":[{"range":{},"target":"file:///home/me/proj/a.go#L12"},{"range":{},"target":"https://pkg.go.dev/fmt"}]}`,
	}, {
		name: "publishDiagnostics with relatedInformation",
		in:   `{"jsonrpc":"2.0","method":"textDocument/publishDiagnostics","params":{"uri":"file:///workspaces/proj/a.go","diagnostics":[{"range":{},"message":"x redeclared in /workspaces/proj/b.go","relatedInformation":[{"location":{"uri":"file:///workspaces/proj/b.go","range":{}},"message":"other declaration"}]}]}}`,
		want: `{"jsonrpc":"2.0","method":"textDocument/publishDiagnostics","params":{"uri":"file:///home/me/proj/a.go","diagnostics":[{"range":{},"message":"x redeclared in /workspaces/proj/b.go","relatedInformation":[{"location":{"uri":"file:///home/me/proj/b.go","range":{}},"message":"other declaration"}]}]}}`,
	}, {
		name: "progress passes as it is",
		in:   `{"jsonrpc":"2.0","method":"$/progress","params":{"token":"t1","value":{"kind":"report","message":"indexing /workspaces/proj","percentage":50}}}`,
		want: `{"jsonrpc":"2.0","method":"$/progress","params":{"token":"t1","value":{"kind":"report","message":"indexing /workspaces/proj","percentage":50}}}`,
	}, {
		name: "partial results in progress are mapped like results",
		in:   `{"jsonrpc":"2.0","method":"$/progress","params":{"token":"p","value":[{"uri":"file:///workspaces/proj/a.go","range":{}}]}}`,
		want: `{"jsonrpc":"2.0","method":"$/progress","params":{"token":"p","value":[{"uri":"file:///home/me/proj/a.go","range":{}}]}}`,
	}, {
		name: "container-only files without a mirror stay container URIs",
		in:   `{"jsonrpc":"2.0","id":8,"result":{"uri":"file:///usr/lib/go/src/fmt/print.go","range":{}}}`,
		want: `{"jsonrpc":"2.0","id":8,"result":{"uri":"file:///usr/lib/go/src/fmt/print.go","range":{}}}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRewriter(testMapper(t), nil, nil, nil)
			got, err := r.ToEditor(context.Background(), []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(canon(t, tt.want), canon(t, string(got))); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// TestUntouched: messages without URIs come back as the very same bytes.
func TestUntouched(t *testing.T) {
	r := NewRewriter(testMapper(t), nil, nil, nil)
	for _, in := range []string{
		`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":12}}`,
		`{"jsonrpc":"2.0", "id":1,  "result":{"contents":{"kind":"markdown","value":"x"}}}`,
		`not json`,
	} {
		got, _ := r.ToServer([]byte(in))
		if string(got) != in {
			t.Errorf("ToServer(%s) = %s", in, got)
		}
		got, _ = r.ToEditor(context.Background(), []byte(in))
		if string(got) != in {
			t.Errorf("ToEditor(%s) = %s", in, got)
		}
	}
	if _, err := r.ToServer([]byte(`{"uri":"file:///home/me/proj/a", oops}`)); err == nil {
		t.Error("broken JSON with a URI: no error")
	}
}

// TestSpelling: URIs go back as the editor spelled them.
func TestSpelling(t *testing.T) {
	r := NewRewriter(testMapper(t), nil, nil, nil)
	// The editor encodes more than it must, in lower case.
	editor := `file:///home/me/proj/%c3%a9t%c3%a9.py`
	in := `{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"` + editor + `","text":""}}}`
	got, err := r.ToServer([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := `file:///workspaces/proj/%C3%A9t%C3%A9.py`; !json.Valid(got) || !contains(got, want) {
		t.Fatalf("to the server: %s, want %s", got, want)
	}
	// The server answers in its own spelling; the editor gets its own.
	for _, server := range []string{`file:///workspaces/proj/%C3%A9t%C3%A9.py`, `file:///workspaces/proj/été.py`, `file:///workspaces/proj/./%c3%a9t%c3%a9.py`} {
		out, err := r.ToEditor(context.Background(), []byte(`{"jsonrpc":"2.0","id":1,"result":{"uri":"`+server+`#L1"}}`))
		if err != nil {
			t.Fatal(err)
		}
		if want := `"uri":"` + editor + `#L1"`; !contains(out, want) {
			t.Errorf("server's %s came back as %s, want %s", server, out, want)
		}
	}
	// A file the editor never named gets the mapper's spelling.
	out, _ := r.ToEditor(context.Background(), []byte(`{"id":1,"result":{"uri":"file:///workspaces/proj/%c3%a9.py"}}`))
	if want := `"uri":"file:///home/me/proj/%C3%A9.py"`; !contains(out, want) {
		t.Errorf("got %s, want %s", out, want)
	}
}

func contains(b []byte, s string) bool { return json.Valid(b) && strings.Contains(string(b), s) }

func TestPrepareInitialize(t *testing.T) {
	in := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":4242,"rootPath":"/home/me/proj","rootUri":"file:///home/me/proj","capabilities":{}}}`
	got := prepareInitialize([]byte(in), testMapper(t))
	want := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":null,"rootPath":"/workspaces/proj","rootUri":"file:///home/me/proj","capabilities":{}}}`
	if diff := cmp.Diff(canon(t, want), canon(t, string(got))); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	// Not initialize: left alone.
	other := `{"jsonrpc":"2.0","id":1,"method":"x","params":{"processId":4242,"note":"initialize"}}`
	if got := prepareInitialize([]byte(other), testMapper(t)); string(got) != other {
		t.Errorf("got %s", got)
	}
}

// TestWindowsHost: on a Windows host, URIs are VS Code's (file:///c%3A/…)
// and go back with the drive letter as the editor wrote it.
func TestWindowsHost(t *testing.T) {
	m, err := pathmap.New(pathmap.Windows, []pathmap.Mount{{Host: `C:\Users\me\proj`, Container: "/workspaces/proj"}})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRewriter(m, nil, nil, nil)
	for _, editor := range []string{"file:///c%3A/Users/me/proj/a.go", "file:///C:/Users/me/proj/b.go"} {
		got, err := r.ToServer([]byte(`{"method":"textDocument/didOpen","params":{"textDocument":{"uri":"` + editor + `"}}}`))
		if err != nil {
			t.Fatal(err)
		}
		cont := "file:///workspaces/proj/" + editor[len(editor)-4:]
		if !contains(got, `"uri":"`+cont+`"`) {
			t.Fatalf("%s went to the server as %s, want %s", editor, got, cont)
		}
		back, err := r.ToEditor(context.Background(), []byte(`{"id":1,"result":[{"uri":"`+cont+`"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		if !contains(back, `"uri":"`+editor+`"`) {
			t.Errorf("%s came back as %s", editor, back)
		}
	}
	// A file the editor never named: VS Code's form.
	back, _ := r.ToEditor(context.Background(), []byte(`{"id":1,"result":{"uri":"file:///workspaces/proj/c.go"}}`))
	if want := `"uri":"file:///c%3A/Users/me/proj/c.go"`; !contains(back, want) {
		t.Errorf("got %s, want %s", back, want)
	}
}
