package devcontainer

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestParseKeys covers every key beyond image, build, mounts and hooks,
// and every runArgs flag, in both of docker's forms.
func TestParseKeys(t *testing.T) {
	base := func(c Config) *Config {
		c.File, c.Image, c.WorkspaceFolder, c.ShutdownAction = testFile, "a", "/workspaces/shop", "stopContainer"
		return &c
	}
	tests := []struct {
		name string
		json string // members after "image": "a"
		env  map[string]string
		want *Config
	}{
		{"capAdd, securityOpt, privileged, init", `"capAdd": ["SYS_PTRACE"], "securityOpt": ["seccomp=unconfined"], "privileged": true, "init": true`,
			nil, base(Config{CapAdd: []string{"SYS_PTRACE"}, SecurityOpt: []string{"seccomp=unconfined"}, Privileged: true, Init: true})},
		{"overrideCommand false", `"overrideCommand": false`, nil, base(Config{OverrideCommand: ptr(false)})},
		{"initializeCommand, object form", `"initializeCommand": {"a": "echo a", "b": ["touch", "b"]}`, nil,
			base(Config{InitializeCommand: &Hook{Parallel: map[string]*Hook{"a": {Shell: "echo a"}, "b": {Argv: []string{"touch", "b"}}}}})},
		{"waitFor", `"waitFor": "postCreateCommand"`, nil, base(Config{WaitFor: "postCreateCommand"})},
		{"userEnvProbe", `"userEnvProbe": "loginShell"`, nil, base(Config{UserEnvProbe: "loginShell"})},
		{"updateRemoteUserUID", `"updateRemoteUserUID": false`, nil, base(Config{UpdateRemoteUserUID: ptr(false)})},
		{"appPort as a number", `"appPort": 3000`, nil, base(Config{AppPort: []string{"3000"}})},
		{"appPort as a list", `"appPort": [3000, "8080:80", "127.0.0.1:9000:9000/udp"]`, nil, base(Config{AppPort: []string{"3000", "8080:80", "127.0.0.1:9000:9000/udp"}})},
		{"portsAttributes", `"portsAttributes": {"3000": {"label": "web", "onAutoForward": "openBrowser", "requireLocalPort": true, "protocol": "https", "elevateIfNeeded": true}}, "otherPortsAttributes": {"onAutoForward": "ignore"}`, nil,
			base(Config{PortsAttributes: map[string]PortAttributes{"3000": {Label: "web", OnAutoForward: "openBrowser", RequireLocalPort: true, Protocol: "https", ElevateIfNeeded: true}},
				OtherPortsAttributes: &PortAttributes{OnAutoForward: "ignore"}})},
		{"hostRequirements", `"hostRequirements": {"cpus": 2, "memory": "4gb", "storage": "32GB", "gpu": "optional"}`, nil,
			base(Config{HostRequirements: &HostRequirements{CPUs: 2, Memory: 4 << 30, Storage: 32 << 30, GPU: "optional"}})},
		{"hostRequirements gpu object", `"hostRequirements": {"gpu": {"cores": 1000}}`, nil,
			base(Config{HostRequirements: &HostRequirements{GPU: "required"}, Unknown: []string{"hostRequirements.gpu.cores"}})},
		{"editor-only keys are quiet", `"settings": {"a": 1}, "extensions": ["x"], "customizations": {"vscode": {"extensions": ["y"]}, "jetbrains": {}}`, nil, base(Config{})},
		{"runArgs: flag=value forms", `"runArgs": ["--cap-add=NET_ADMIN", "--security-opt=apparmor=unconfined", "--privileged", "--init=false", "--device=/dev/fuse", "--gpus=all", "--env=A=1", "--env-file=.devcontainer/dev.env", "--add-host=db:10.0.0.2", "--network=host", "--shm-size=1g", "--ulimit=nofile=1024:2048", "--label=team=web", "--volume=/cache:/cache:ro", "--mount=type=volume,source=v,target=/v", "--user=1000:1000", "--hostname=dev"]`, nil,
			base(Config{CapAdd: []string{"NET_ADMIN"}, SecurityOpt: []string{"apparmor=unconfined"}, Privileged: true,
				ContainerEnv: map[string]string{"A": "1"}, ContainerUser: "1000:1000",
				Run: RunArgs{Devices: []string{"/dev/fuse"}, GPUs: "all", EnvFiles: []string{testWS + "/.devcontainer/dev.env"}, ExtraHosts: []string{"db:10.0.0.2"},
					Network: "host", ShmSize: 1 << 30, Ulimits: []Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}}, Labels: map[string]string{"team": "web"},
					Hostname: "dev", Mounts: []Mount{{Type: "bind", Source: "/cache", Target: "/cache", ReadOnly: true}, {Type: "volume", Source: "v", Target: "/v"}}}})},
		{"runArgs: flag value forms and short flags", `"runArgs": ["--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--device", "/dev/kvm", "--gpus", "device=0", "-e", "B=2", "-eC=3", "--env-file", "/etc/x.env", "--add-host", "h=1.2.3.4", "--net", "bridge", "--shm-size", "256m", "--ulimit", "core=-1", "-l", "k", "-v", "cache:/c", "-v", "/anon", "--mount", "type=tmpfs,target=/t", "-u", "dev", "-h", "box", "--init"]`, nil,
			base(Config{CapAdd: []string{"SYS_ADMIN"}, SecurityOpt: []string{"seccomp=unconfined"}, Init: true,
				ContainerEnv: map[string]string{"B": "2", "C": "3"}, ContainerUser: "dev",
				Run: RunArgs{Devices: []string{"/dev/kvm"}, GPUs: "device=0", EnvFiles: []string{"/etc/x.env"}, ExtraHosts: []string{"h:1.2.3.4"},
					Network: "bridge", ShmSize: 256 << 20, Ulimits: []Ulimit{{Name: "core", Soft: -1, Hard: -1}}, Labels: map[string]string{"k": ""},
					Hostname: "box", Mounts: []Mount{{Type: "volume", Source: "cache", Target: "/c"}, {Type: "volume", Target: "/anon"}, {Type: "tmpfs", Target: "/t"}}}})},
		{"runArgs adds to the keys, and wins where both set one value", `"runArgs": ["-e", "A=run", "--cap-add", "B", "-u", "run"], "containerEnv": {"A": "key", "K": "1"}, "capAdd": ["A"], "containerUser": "key"`, nil,
			base(Config{ContainerEnv: map[string]string{"A": "run", "K": "1"}, CapAdd: []string{"A", "B"}, ContainerUser: "run"})},
		{"runArgs -e NAME takes the host's value, or nothing", `"runArgs": ["-e", "TAG", "-e", "UNSET"]`, map[string]string{"TAG": "v3"},
			base(Config{ContainerEnv: map[string]string{"TAG": "v3"}})},
		{"runArgs: a relative -v source is a bind from the workspace", `"runArgs": ["-v", "./data:/data"]`, nil,
			base(Config{Run: RunArgs{Mounts: []Mount{{Type: "bind", Source: testWS + "/data", Target: "/data"}}}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(`{"image": "a", `+tt.json+`}`), testFile, testWS, mapEnv(tt.env))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Config{}, "Hash"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseKeyErrors(t *testing.T) {
	tests := []struct{ json, want string }{
		{`{"image": "a", "runArgs": ["--rm"]}`, `f:1:28: runArgs[0]: docker run flag "--rm" is not supported in runArgs; berth maps only ` +
			`--cap-add, --security-opt, --privileged, --device, --gpus, -e/--env, --env-file, --add-host, --network, --shm-size, --ulimit, -l/--label, --init, -v/--volume, --mount, -u/--user, -h/--hostname`},
		{"{\"image\": \"a\",\n \"runArgs\": [\"--cap-add\", \"X\",\n    \"-p\", \"80:80\"]}", `f:3:5: runArgs[2]: docker run flag "-p" is not supported in runArgs; berth maps only --cap-add, --security-opt, --privileged, --device, --gpus, -e/--env, --env-file, --add-host, --network, --shm-size, --ulimit, -l/--label, --init, -v/--volume, --mount, -u/--user, -h/--hostname`},
		{`{"image": "a", "runArgs": ["--userns=keep-id"]}`, `f:1:28: runArgs[0]: docker run flag "--userns=keep-id" is not supported in runArgs: berth gives rootless Podman a keep-id user namespace itself when the remote user isn't root`},
		{`{"image": "a", "runArgs": ["debian"]}`, `f:1:28: runArgs[0]: "debian" is not a flag: runArgs takes docker run flags only (the image comes from image or build)`},
		{`{"image": "a", "runArgs": ["--cap-add"]}`, `f:1:28: runArgs[0]: --cap-add needs a value`},
		{`{"image": "a", "runArgs": ["--privileged=maybe"]}`, `f:1:28: runArgs[0]: --privileged=maybe: "maybe" is not true or false`},
		{`{"image": "a", "runArgs": ["--shm-size", "lots"]}`, `f:1:42: runArgs[1]: --shm-size "lots" is not a size such as 512mb or 4gb`},
		{`{"image": "a", "runArgs": ["--ulimit=nofile"]}`, `f:1:28: runArgs[0]: --ulimit "nofile": want NAME=SOFT[:HARD]`},
		{`{"image": "a", "runArgs": ["-v", "a:b"]}`, `f:1:34: runArgs[1]: --volume "a:b": target "b" is not an absolute container path`},
		{`{"image": "a", "runArgs": ["-v", "/a:/b:shared"]}`, `f:1:34: runArgs[1]: --volume "/a:/b:shared": option "shared" is not supported (ro, rw, z, Z)`},
		{`{"image": "a", "runArgs": ["--add-host", "db"]}`, `f:1:42: runArgs[1]: --add-host "db": want HOST:IP`},
		{`{"image": "a", "runArgs": ["--mount", "type=bind,target=/x"]}`, `f:1:39: runArgs[1]: bind mount has no source`},
		{`{"image": "a", "runArgs": "--init"}`, `f:1:27: runArgs: want an array of strings, got a string`},
		{`{"image": "a", "runArgs": [1]}`, `f:1:28: runArgs[0]: want a string, got a number`},
		{`{"image": "a", "waitFor": "later"}`, `f:1:27: waitFor: unknown value "later" (want initializeCommand, onCreateCommand, updateContentCommand, postCreateCommand or postStartCommand)`},
		{`{"image": "a", "userEnvProbe": "bash"}`, `f:1:32: userEnvProbe: unknown value "bash" (want none, interactiveShell, loginShell or loginInteractiveShell)`},
		{`{"image": "a", "privileged": "yes"}`, `f:1:30: privileged: want a boolean, got a string`},
		{`{"image": "a", "capAdd": "SYS_PTRACE"}`, `f:1:26: capAdd: want an array of strings, got a string`},
		{`{"image": "a", "appPort": ["1:2:3:4"]}`, `f:1:28: appPort[0]: "1:2:3:4" is not [[HOSTIP:]HOSTPORT:]PORT`},
		{`{"image": "a", "appPort": 0}`, `f:1:27: appPort: port 0 is not a whole number from 1 to 65535`},
		{`{"image": "a", "hostRequirements": {"cpus": 1.5}}`, `f:1:45: hostRequirements.cpus: want a whole number of CPUs, got 1.5`},
		{`{"image": "a", "hostRequirements": {"memory": "much"}}`, `f:1:47: hostRequirements.memory: "much" is not a size such as 512mb or 4gb`},
		{`{"image": "a", "portsAttributes": {"3000": {"onAutoForward": "pop"}}}`, `f:1:62: portsAttributes.3000.onAutoForward: unknown value "pop" (want notify, openBrowser, openBrowserOnce, openPreview, silent or ignore)`},
		{`{"image": "a", "initializeCommand": 3}`, `f:1:37: initializeCommand: want a string, an array of strings or an object of commands, got a number`},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.json), "f", "/ws", nil)
		if !errors.Is(err, ErrBadConfig) {
			t.Errorf("Parse(%s) error = %v, want one wrapping ErrBadConfig", tt.json, err)
			continue
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("Parse(%s) error:\n got %s\nwant %s", tt.json, got, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "1k": 1024, "1.5gb": 3 << 29, "2 GB": 2 << 30, "1t": 1 << 40, "64M": 64 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "gb", "-1", "1x", "1.2.3m"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q): no error", in)
		}
	}
}

func TestAttributesOf(t *testing.T) {
	c := &Config{PortsAttributes: map[string]PortAttributes{"3000": {Label: "web"}, "9000-9010": {Label: "range"}}}
	for port, want := range map[int]string{3000: "web", 9005: "range", 9011: ""} {
		if got := c.AttributesOf(port).Label; got != want {
			t.Errorf("AttributesOf(%d).Label = %q, want %q", port, got, want)
		}
	}
	c.OtherPortsAttributes = &PortAttributes{Label: "other"}
	if got := c.AttributesOf(1).Label; got != "other" {
		t.Errorf("AttributesOf(1).Label = %q, want other", got)
	}
}
