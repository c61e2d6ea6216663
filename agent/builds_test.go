package agent

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeELF is the smallest file Open takes for a static Linux executable of
// machine: an ELF header and nothing else.
func fakeELF(t *testing.T, machine elf.Machine) []byte {
	t.Helper()
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(machine), Version: uint32(elf.EV_CURRENT),
		Ehsize: 64, Phentsize: 56, Shentsize: 64,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, h); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func hashOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// builtin is a set like the one berth carries: one lazy build per platform.
func builtin() Set {
	var bins []*Binary
	for _, arch := range []string{"amd64", "arm64"} {
		data := []byte("embedded " + arch)
		bins = append(bins, Lazy("linux", arch, hashOf(data), SourceEmbedded, func() ([]byte, error) { return data, nil }))
	}
	return SetOf(bins...)
}

// Locate takes $BERTH_AGENT, else a berth-agent beside berth, for its
// platform, and the builds berth carries for the others.
func TestLocate(t *testing.T) {
	dir := t.TempDir()
	amd64 := writeFile(t, filepath.Join(dir, "amd64"), fakeELF(t, elf.EM_X86_64))
	arm64 := writeFile(t, filepath.Join(dir, "arm64"), fakeELF(t, elf.EM_AARCH64))
	notELF := writeFile(t, filepath.Join(dir, "script"), []byte("#!/bin/sh\n"))

	tests := []struct {
		name    string
		env     string // $BERTH_AGENT
		beside  string // copied beside the executable
		builtin Set
		want    map[string]Source // platform: source
		wantErr string
	}{
		{name: "embedded only", builtin: builtin(), want: map[string]Source{"linux/amd64": SourceEmbedded, "linux/arm64": SourceEmbedded}},
		{name: "beside replaces its platform", beside: arm64, builtin: builtin(), want: map[string]Source{"linux/amd64": SourceEmbedded, "linux/arm64": SourceBeside}},
		{name: "env before beside", env: amd64, beside: arm64, builtin: builtin(), want: map[string]Source{"linux/amd64": SourceEnv, "linux/arm64": SourceEmbedded}},
		{name: "beside alone", beside: amd64, want: map[string]Source{"linux/amd64": SourceBeside}},
		{name: "env alone", env: arm64, want: map[string]Source{"linux/arm64": SourceEnv}},
		{name: "a bad file beside is passed over", beside: notELF, builtin: builtin(), want: map[string]Source{"linux/amd64": SourceEmbedded, "linux/arm64": SourceEmbedded}},
		{name: "a bad BERTH_AGENT is an error", env: notELF, builtin: builtin(), wantErr: "BERTH_AGENT: agent: " + notELF + " is not a Linux executable"},
		{name: "a missing BERTH_AGENT is an error", env: filepath.Join(dir, "nothing"), builtin: builtin(), wantErr: "BERTH_AGENT: agent: open " + filepath.Join(dir, "nothing")},
		{name: "nothing at all", wantErr: "agent: this berth carries no agent, and there is none at "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exeDir := t.TempDir()
			exe := writeFile(t, filepath.Join(exeDir, "berth"), nil)
			old := executable
			executable = func() (string, error) { return exe, nil }
			t.Cleanup(func() { executable = old })
			t.Setenv(EnvBinary, tt.env)
			if tt.beside != "" {
				data, err := os.ReadFile(tt.beside)
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(exeDir, "berth-agent"), data)
			}
			set, err := Locate(tt.builtin, slog.New(slog.DiscardHandler))
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("Locate: err = %v, want one starting %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]Source{}
			for p, b := range set {
				got[p] = b.Source
				if b.Platform() != p {
					t.Errorf("%s: build is for %s", p, b.Platform())
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("Locate = %v, want %v", got, tt.want)
			}
			for p, src := range tt.want {
				if got[p] != src {
					t.Errorf("Locate = %v, want %v", got, tt.want)
				}
			}
			for p, b := range tt.builtin {
				if b.Source != SourceEmbedded || len(tt.builtin) != 2 {
					t.Errorf("Locate changed the builtin set at %s", p)
				}
			}
		})
	}
}

func TestSetFor(t *testing.T) {
	set := builtin()
	tests := []struct {
		set      Set
		platform string
		wantErr  string
	}{
		{set, "linux/amd64", ""},
		{set, "linux/arm64", ""},
		{set, "linux/riscv64", "no agent build for this platform: the container is linux/riscv64 but berth has agents for linux/amd64, linux/arm64 only"},
		{set, "darwin/arm64", "no agent build for this platform: the container is darwin/arm64 but berth has agents for linux/amd64, linux/arm64 only"},
		{Set{}, "linux/amd64", "no agent build for this platform: the container is linux/amd64 and berth has no agent builds"},
	}
	for _, tt := range tests {
		t.Run(tt.platform, func(t *testing.T) {
			b, err := tt.set.For(tt.platform)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNoBuild) || err.Error() != tt.wantErr {
					t.Errorf("For: err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || b.Platform() != tt.platform {
				t.Errorf("For = %v, %v", b, err)
			}
		})
	}
}

// A lazy build loads once, on first use, and only if its bytes are those
// its hash names.
func TestLazy(t *testing.T) {
	data := []byte("an agent")
	loads := 0
	load := func() ([]byte, error) {
		loads++
		return data, nil
	}
	b := Lazy("linux", "amd64", hashOf(data), SourceEmbedded, load)
	if loads != 0 {
		t.Fatalf("loaded %d times before use", loads)
	}
	for range 3 {
		if got, err := b.Read(); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Read = %q, %v", got, err)
		}
	}
	if loads != 1 {
		t.Errorf("loaded %d times, want once", loads)
	}
	tarball, err := b.Tar()
	if err != nil || tarball.Len() == 0 {
		t.Errorf("Tar: %v", err)
	}

	bad := Lazy("linux", "arm64", hashOf([]byte("another")), SourceEmbedded, load)
	if _, err := bad.Read(); err == nil || !strings.Contains(err.Error(), "linux/arm64 build is corrupt") {
		t.Errorf("Read of a corrupt build: err = %v", err)
	}
	failing := Lazy("linux", "arm64", hashOf(data), SourceEmbedded, func() ([]byte, error) { return nil, errors.New("gone") })
	if _, err := failing.Read(); err == nil || err.Error() != "gone" {
		t.Errorf("Read of a failing build: err = %v", err)
	}
}
