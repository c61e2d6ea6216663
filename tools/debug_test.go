package tools

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDebugServerArgv(t *testing.T) {
	tests := []struct {
		name string
		req  DebugRequest
		want []string
	}{
		{
			name: "debugpy program",
			req:  DebugRequest{Adapter: "debugpy", Program: "/work/proj/app.py", Args: []string{"--verbose", "in.txt"}, Port: 5678},
			want: []string{"python3", "-m", "debugpy", "--listen", "127.0.0.1:5678", "--wait-for-client", "/work/proj/app.py", "--verbose", "in.txt"},
		},
		{
			name: "debugpy module",
			req:  DebugRequest{Adapter: "debugpy", Module: "pkg.main", Port: 5678},
			want: []string{"python3", "-m", "debugpy", "--listen", "127.0.0.1:5678", "--wait-for-client", "-m", "pkg.main"},
		},
		{
			name: "debugpy connects back",
			req:  DebugRequest{Adapter: "debugpy", Module: "pkg.main", Args: []string{"-x"}, ConnectBack: "127.0.0.1:41000"},
			want: []string{"python3", "-m", "debugpy", "--connect", "127.0.0.1:41000", "-m", "pkg.main", "-x"},
		},
		{
			name: "delve program runs headless for remote attach",
			req:  DebugRequest{Adapter: "delve", Program: "/work/proj/cmd/app", Args: []string{"-v", "--", "x"}, Port: 2345},
			want: []string{"dlv", "debug", "/work/proj/cmd/app", "--headless", "--listen=127.0.0.1:2345", "--api-version=2", "--", "-v", "--", "x"},
		},
		{
			name: "delve program without args",
			req:  DebugRequest{Adapter: "delve", Program: "/work/proj/main.go", Port: 2345},
			want: []string{"dlv", "debug", "/work/proj/main.go", "--headless", "--listen=127.0.0.1:2345", "--api-version=2"},
		},
		{
			name: "delve without program is a DAP server",
			req:  DebugRequest{Adapter: "delve", Port: 2345},
			want: []string{"dlv", "dap", "--listen=127.0.0.1:2345"},
		},
		{
			name: "delve connects back",
			req:  DebugRequest{Adapter: "delve", Program: "/work/proj/cmd/app", ConnectBack: "127.0.0.1:41000"},
			want: []string{"dlv", "dap", "--client-addr=127.0.0.1:41000"},
		},
		{
			name: "custom with {port} everywhere",
			req:  DebugRequest{Adapter: "custom", Command: []string{"node", "--inspect=127.0.0.1:{port}", "server.js", "{port}{port}"}, Port: 9229},
			want: []string{"node", "--inspect=127.0.0.1:9229", "server.js", "92299229"},
		},
		{
			name: "custom without {port} needs no port",
			req:  DebugRequest{Adapter: "custom", Command: []string{"my-dap", "--stdio"}},
			want: []string{"my-dap", "--stdio"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DebugServerArgv(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DebugServerArgv() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDebugServerArgvErrors(t *testing.T) {
	tests := []struct {
		name string
		req  DebugRequest
	}{
		{name: "debugpy without program or module", req: DebugRequest{Adapter: "debugpy", Port: 5678}},
		{name: "debugpy with both", req: DebugRequest{Adapter: "debugpy", Program: "a.py", Module: "a", Port: 5678}},
		{name: "debugpy without port", req: DebugRequest{Adapter: "debugpy", Program: "a.py"}},
		{name: "debugpy port out of range", req: DebugRequest{Adapter: "debugpy", Program: "a.py", Port: 70000}},
		{name: "debugpy bad connect-back", req: DebugRequest{Adapter: "debugpy", Program: "a.py", ConnectBack: "localhost"}},
		{name: "debugpy connect-back without host", req: DebugRequest{Adapter: "debugpy", Program: "a.py", ConnectBack: ":5678"}},
		{name: "debugpy connect-back port not a number", req: DebugRequest{Adapter: "debugpy", Program: "a.py", ConnectBack: "127.0.0.1:http"}},
		{name: "delve with a module", req: DebugRequest{Adapter: "delve", Module: "m", Port: 2345}},
		{name: "delve args without program", req: DebugRequest{Adapter: "delve", Args: []string{"x"}, Port: 2345}},
		{name: "delve args when connecting back", req: DebugRequest{Adapter: "delve", Program: "/p", Args: []string{"x"}, ConnectBack: "127.0.0.1:1"}},
		{name: "delve without port", req: DebugRequest{Adapter: "delve", Program: "/p"}},
		{name: "custom empty command", req: DebugRequest{Adapter: "custom", Port: 1}},
		{name: "custom empty executable", req: DebugRequest{Adapter: "custom", Command: []string{""}, Port: 1}},
		{name: "custom {port} without port", req: DebugRequest{Adapter: "custom", Command: []string{"srv", "--port={port}"}}},
		{name: "unknown adapter", req: DebugRequest{Adapter: "gdb", Program: "/a.out", Port: 1}},
		{name: "no adapter", req: DebugRequest{Program: "/a.out", Port: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DebugServerArgv(tt.req)
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("DebugServerArgv() = %q, %v; want ErrBadRequest", got, err)
			}
		})
	}
}

func TestAttachConfig(t *testing.T) {
	mappings := []PathMapping{
		{Host: "/home/u/proj", Container: "/work/proj"},
		{Host: "/home/u/proj/vendor/lib", Container: "/opt/lib"},
		{Host: "/home/u/cache", Container: "/cache"},
	}
	tests := []struct {
		name       string
		req        DebugRequest
		host       string
		port       int
		mappings   []PathMapping
		cwd        string
		justMyCode bool
		want       map[string]any
	}{
		{
			name: "debugpy program", req: DebugRequest{Adapter: "debugpy", Program: "/work/proj/app.py", Port: 5678},
			host: "127.0.0.1", port: 49152, mappings: mappings, cwd: "/work/proj", justMyCode: true,
			want: map[string]any{
				"type": "debugpy", "request": "attach", "name": "berth: app.py",
				"connect": map[string]any{"host": "127.0.0.1", "port": 49152},
				"pathMappings": []map[string]string{
					{"localRoot": "/home/u/proj/vendor/lib", "remoteRoot": "/opt/lib"},
					{"localRoot": "/home/u/cache", "remoteRoot": "/cache"},
					{"localRoot": "/home/u/proj", "remoteRoot": "/work/proj"},
				},
				"justMyCode": true,
				"cwd":        "/work/proj",
			},
		},
		{
			name: "debugpy module connecting back listens", req: DebugRequest{Adapter: "debugpy", Module: "pkg.main", ConnectBack: "127.0.0.1:41000"},
			port: 50000,
			want: map[string]any{
				"type": "debugpy", "request": "attach", "name": "berth: pkg.main",
				"listen":       map[string]any{"host": "127.0.0.1", "port": 50000},
				"pathMappings": []map[string]string{},
				"justMyCode":   false,
			},
		},
		{
			name: "delve program", req: DebugRequest{Adapter: "delve", Program: "/work/proj/cmd/app", Port: 2345},
			host: "localhost", port: 49153, mappings: mappings[:1], cwd: "/work/proj",
			want: map[string]any{
				"type": "go", "request": "attach", "mode": "remote", "name": "berth: app",
				"host": "localhost", "port": 49153,
				"substitutePath": []map[string]string{{"from": "/home/u/proj", "to": "/work/proj"}},
				"program":        "/work/proj/cmd/app",
				"cwd":            "/work/proj",
			},
		},
		{
			name: "delve without program launches the package in cwd", req: DebugRequest{Adapter: "delve", Port: 2345},
			host: "127.0.0.1", port: 49154, cwd: "/work/proj/cmd/app",
			want: map[string]any{
				"type": "go", "request": "launch", "mode": "debug", "name": "berth: delve",
				"host": "127.0.0.1", "port": 49154,
				"substitutePath": []map[string]string{},
				"program":        "/work/proj/cmd/app",
				"cwd":            "/work/proj/cmd/app",
			},
		},
		{
			name: "custom", req: DebugRequest{Adapter: "custom", Command: []string{"srv", "{port}"}, Port: 9229},
			host: "127.0.0.1", port: 49155, mappings: mappings,
			want: map[string]any{
				"type": "custom", "request": "attach", "name": "berth: custom",
				"host": "127.0.0.1", "port": 49155,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AttachConfig(tt.req, tt.host, tt.port, tt.mappings, tt.cwd, tt.justMyCode)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("AttachConfig() mismatch (-want +got):\n%s", diff)
			}
			if _, err := json.Marshal(got); err != nil {
				t.Errorf("config does not marshal: %v", err)
			}
		})
	}
	// The caller's slice keeps its order.
	if mappings[0].Host != "/home/u/proj" {
		t.Errorf("AttachConfig reordered the caller's mappings: %v", mappings)
	}
}
