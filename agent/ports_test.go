package agent

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseNetTCP(t *testing.T) {
	const v4 = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5678 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0BB8 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000  1000        0 9999 1 0000000000000000 100 0 0 10 0
`
	const v6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F40 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4321 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:2328 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4322 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:2329 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4323 1 0000000000000000 100 0 0 10 0
`
	type row struct {
		Addr  string
		Port  int
		Inode uint64
	}
	for _, tc := range []struct {
		name, table string
		want        []row
		wantErr     bool
	}{
		{"ipv4", v4, []row{{"0.0.0.0", 8080, 1234}, {"127.0.0.1", 3000, 5678}}, false},
		{"ipv6", v6, []row{{"::", 8000, 4321}, {"::1", 9000, 4322}, {"127.0.0.1", 9001, 4323}}, false},
		{"header only", "  sl  local_address\n", nil, false},
		{"empty", "", nil, false},
		{"bad address", "h\n 0: 0100:1F90 00000000:0000 0A 0 0 0 0 0 1 0\n", nil, true},
		{"bad inode", "h\n 0: 0100007F:1F90 00000000:0000 0A 0 0 0 0 0 x 0\n", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := parseNetTCP(strings.NewReader(tc.table))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			var got []row
			for _, e := range es {
				got = append(got, row{e.addr.String(), e.port, e.inode})
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseNetTCP (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckBrowseURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://localhost:8000/x", true},
		{"https://example.com/", true},
		{"file:///etc/passwd", false},
		{"javascript:alert(1)", false},
		{"http://", false},
		{"http://a b/", false},
		{"http://localhost/\x1b[2J", false},
		{"http://x/" + strings.Repeat("a", maxURL), false},
	} {
		if err := CheckBrowseURL(tc.url); (err == nil) != tc.ok {
			t.Errorf("CheckBrowseURL(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
	}
}

func TestLocalPort(t *testing.T) {
	for _, tc := range []struct {
		scheme, hostport string
		port             int
		ok               bool
	}{
		{"http", "localhost:8000", 8000, true},
		{"http", "127.0.0.1:3000", 3000, true},
		{"http", "[::1]:3000", 3000, true},
		{"http", "0.0.0.0:5000", 5000, true},
		{"http", "localhost", 80, true},
		{"https", "app.localhost", 443, true},
		{"http", "example.com:8000", 0, false},
		{"http", "10.0.0.2:8000", 0, false},
	} {
		_, port, ok := LocalPort(tc.scheme, tc.hostport)
		if port != tc.port || ok != tc.ok {
			t.Errorf("LocalPort(%q, %q) = %d, %v; want %d, %v", tc.scheme, tc.hostport, port, ok, tc.port, tc.ok)
		}
	}
}

func TestCheckPorts(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    ListenPort
		ok   bool
	}{
		{"good", ListenPort{Port: 80, Addr: "0.0.0.0", PID: 7, Name: "httpd"}, true},
		{"port 0", ListenPort{Port: 0, Addr: "0.0.0.0"}, false},
		{"port too big", ListenPort{Port: 70000, Addr: "0.0.0.0"}, false},
		{"bad addr", ListenPort{Port: 80, Addr: "nowhere"}, false},
		{"bad pid", ListenPort{Port: 80, Addr: "::", PID: -1}, false},
	} {
		m := portsMsg{Ports: []ListenPort{tc.p}}
		if err := checkPorts(&m); (err == nil) != tc.ok {
			t.Errorf("%s: checkPorts = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestBrowseLimit(t *testing.T) {
	c := &Client{}
	start := time.Unix(1000, 0)
	for i := range browseBurst {
		if !c.browseAllowed(start.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("request %d refused", i)
		}
	}
	if c.browseAllowed(start.Add(30 * time.Second)) {
		t.Error("request past the burst taken within the window")
	}
	if !c.browseAllowed(start.Add(browseWindow + time.Second)) {
		t.Error("request refused once the oldest left the window")
	}
}

func TestHostURL(t *testing.T) {
	hostPort := func(port int) (int, error) {
		if port == 9999 {
			return 0, errors.New("no forward")
		}
		return port + 1000, nil
	}
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{in: "http://localhost:3000/x?y=1#z", want: "http://localhost:4000/x?y=1#z"},
		{in: "http://127.0.0.1:3000/", want: "http://127.0.0.1:4000/"},
		{in: "http://[::1]:3000/", want: "http://127.0.0.1:4000/"},
		{in: "http://0.0.0.0:3000/", want: "http://localhost:4000/"},
		{in: "http://app.localhost:3000/", want: "http://localhost:4000/"},
		{in: "https://localhost/", want: "https://localhost:1443/"},
		{in: "https://example.com:3000/", want: "https://example.com:3000/"},
		{in: "http://localhost:9999/", err: true},
		{in: "http://%zz", err: true},
	} {
		got, err := HostURL(tc.in, hostPort)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("HostURL(%q) = %q, %v; want %q, error %t", tc.in, got, err, tc.want, tc.err)
		}
	}
}
