package agent

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Binary is an agent executable on the host, ready to copy into instances.
type Binary struct {
	Path   string // "" for a build berth carries in itself
	Hash   string // sha256 of the executable, hex: the build's identity
	GOOS   string // always "linux"
	GOARCH string // from the ELF header
	Source Source // where berth found it

	load func() ([]byte, error) // the bytes of a build without a Path
}

// ContainerPath is where this build lives inside an instance.
func (b *Binary) ContainerPath() string {
	return Dir + "/agent-" + b.Hash[:16]
}

// InitPath is a stable copy of the agent that instances can run as their
// main process (`InitPath init`). Unlike the build-named copies it is never
// cleaned up, so an instance can always restart.
const InitPath = Dir + "/init"

// Tar returns a tar stream that puts the binary at ContainerPath and at
// InitPath when extracted at /.
func (b *Binary) Tar() (*bytes.Buffer, error) {
	data, err := b.Read()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(Dir, "/") + "/", Mode: 0o755, ModTime: now}); err != nil {
		return nil, err
	}
	// Root's alone, before the engine makes RunDir in it (see DoorDir).
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(DoorDir, "/") + "/", Mode: 0o700, ModTime: now}); err != nil {
		return nil, err
	}
	for _, p := range []string{b.ContainerPath(), InitPath} {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(p, "/"), Mode: 0o755, Size: int64(len(data)), ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// Read returns the binary's bytes.
func (b *Binary) Read() ([]byte, error) {
	if b.load != nil {
		return b.load()
	}
	data, err := os.ReadFile(b.Path)
	if err != nil {
		return nil, fmt.Errorf("agent: read %s: %w", b.Path, err)
	}
	return data, nil
}

var elfArch = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
	elf.EM_386:     "386",
	elf.EM_ARM:     "arm",
	elf.EM_RISCV:   "riscv64",
	elf.EM_PPC64:   "ppc64le",
	elf.EM_S390:    "s390x",
}

// Open checks that path is a Linux ELF executable and hashes it.
func Open(path string) (*Binary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("agent: %s is not a Linux executable: %w", path, err)
	}
	arch, ok := elfArch[ef.Machine]
	if !ok {
		return nil, fmt.Errorf("agent: %s: unsupported machine %v", path, ef.Machine)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("agent: %s is dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("agent: hash %s: %w", path, err)
	}
	return &Binary{Path: path, Hash: hex.EncodeToString(h.Sum(nil)), GOOS: "linux", GOARCH: arch}, nil
}

// SelfHash hashes the running executable: the agent's own build identity.
func SelfHash() (string, error) {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
