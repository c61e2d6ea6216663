package embedded

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/berthdev/berth/agent"
)

// Every build berth carries decompresses, once, to a static Linux
// executable of its platform whose hash the manifest names.
func TestAgents(t *testing.T) {
	set, err := Agents()
	if err != nil {
		t.Fatal(err)
	}
	machines := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64}
	if got := strings.Join(set.Platforms(), " "); got != "linux/amd64 linux/arm64" {
		t.Fatalf("platforms %q, want linux/amd64 linux/arm64", got)
	}
	for platform, machine := range machines {
		t.Run(platform, func(t *testing.T) {
			b, err := set.For(platform)
			if err != nil {
				t.Fatal(err)
			}
			if b.Source != agent.SourceEmbedded || b.Path != "" || b.Platform() != platform || len(b.Hash) != 64 {
				t.Errorf("build %+v", b)
			}
			data, err := b.Read()
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != b.Hash {
				t.Errorf("sha256 %x, manifest says %s", sum, b.Hash)
			}
			f, err := elf.NewFile(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if f.Machine != machine || f.Type != elf.ET_EXEC {
				t.Errorf("ELF %v %v, want %v executable", f.Machine, f.Type, machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Error("dynamically linked")
				}
			}
			again, err := b.Read()
			if err != nil || &again[0] != &data[0] {
				t.Errorf("a second Read decompressed again")
			}
		})
	}
	if _, err := set.For("linux/riscv64"); !errors.Is(err, agent.ErrNoBuild) || !strings.Contains(err.Error(), "linux/amd64, linux/arm64") {
		t.Errorf("For(linux/riscv64): err = %v, want ErrNoBuild naming the platforms there are", err)
	}
	// Callers get their own set: changing it changes no one else's.
	delete(set, "linux/amd64")
	if again, _ := Agents(); again["linux/amd64"] == nil {
		t.Error("Agents shares its set")
	}
}

func TestParseManifest(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		in      string
		want    []Entry
		wantErr string
	}{
		{"entries and comments", "# a comment\n\n" + hash + " linux/amd64 a.zst\n" + hash + "  linux/arm64\tb.zst\n",
			[]Entry{{hash, "linux/amd64", "a.zst"}, {hash, "linux/arm64", "b.zst"}}, ""},
		{"empty", "", nil, ""},
		{"short hash", "abc linux/amd64 a.zst\n", nil, "agents.txt:1: want"},
		{"no platform", hash + " amd64 a.zst\n", nil, "agents.txt:1: want"},
		{"missing file", "# x\n" + hash + " linux/amd64\n", nil, "agents.txt:2: want"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseManifest([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("entry %d: %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestDecompressRejectsGarbage(t *testing.T) {
	if _, err := Decompress([]byte("not zstd")); err == nil {
		t.Error("Decompress of garbage succeeded")
	}
}

// The agent must not carry its predecessors: if it imported this package,
// every build would embed the last one and none would be reproducible.
func TestAgentDoesNotEmbedAgents(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../../cmd/berth-agent").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "github.com/berthdev/berth/agent/embedded" {
			t.Fatal("cmd/berth-agent imports agent/embedded")
		}
	}
}
