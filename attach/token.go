package attach

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// minToken is the shortest token berth accepts from the user.
const minToken = 16

// NewToken returns a fresh random token: 32 bytes from crypto/rand, in hex.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making a token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// TokenDir is the directory of berth's token files:
// $XDG_RUNTIME_DIR/berth, else berth/run under the user's cache directory.
func TokenDir() (string, error) {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "berth"), nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no $XDG_RUNTIME_DIR and no cache directory for the token file: %w", err)
	}
	return filepath.Join(cache, "berth", "run"), nil
}

// TokenPath is the token file of a `berth --tcp` on port: each listener
// has its own.
func TokenPath(port int) (string, error) {
	dir, err := TokenDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, fmt.Sprintf("tcp-%d.token", port)), nil
}

// ReadTokenFile reads a token from path. The file must be the user's own
// and readable by no one else: a token others can read protects nothing.
func ReadTokenFile(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s: %w: not a regular file", path, ErrBadToken)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s: %w: others may read it (mode %04o); chmod 600 it", path, ErrBadToken, fi.Mode().Perm())
	}
	if uid, ok := ownerOf(fi); ok && uid != os.Geteuid() {
		return "", fmt.Errorf("token file %s: %w: owned by uid %d, not by you", path, ErrBadToken, uid)
	}
	b, err := readLimited(f, 4096)
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	return checkToken(strings.TrimSpace(string(b)), "token file "+path)
}

func readLimited(r io.Reader, n int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, n+1))
	if err == nil && int64(len(b)) > n {
		err = fmt.Errorf("%w: longer than %d bytes", ErrBadToken, n)
	}
	return b, err
}

func checkToken(token, from string) (string, error) {
	if len(token) < minToken {
		return "", fmt.Errorf("%s: %w: a token has at least %d characters", from, ErrBadToken, minToken)
	}
	return token, nil
}

// suppliedToken is the token the user supplied, from file (first) or env,
// or "" for none.
func suppliedToken(file, env string) (string, error) {
	switch {
	case file != "":
		return ReadTokenFile(file)
	case env != "":
		return checkToken(strings.TrimSpace(env), "BERTH_TOKEN")
	}
	return "", nil
}

// ResolveToken finds the token for a berth --tcp on port, as `berth
// connect` does: the token file given, else $BERTH_TOKEN (env), else the
// default token file for that port.
func ResolveToken(file, env string, port int) (string, error) {
	token, err := suppliedToken(file, env)
	if err != nil || token != "" {
		return token, err
	}
	path, err := TokenPath(port)
	if err != nil {
		return "", err
	}
	token, err = ReadTokenFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no token: %s does not exist (is berth --tcp running on port %d as you?); pass --tcp-token-file or set BERTH_TOKEN", path, port)
	}
	return token, err
}

// privateDir makes dir, if need be, and makes sure it is a directory of
// the user's that no one else can enter.
func privateDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if uid, ok := ownerOf(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d, not by you", dir, uid)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// writeTokenFile writes token to path, mode 0600, replacing a stale file
// (the directory is the user's alone, so no one else can have put it).
func writeTokenFile(path, token string) error {
	if err := privateDir(filepath.Dir(path)); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// removeTokenFile removes path if it still holds token: another berth may
// have taken the port, and the file, since.
func removeTokenFile(path, token string) {
	b, err := os.ReadFile(path)
	if err == nil && bytes.Equal(bytes.TrimSpace(b), []byte(token)) {
		os.Remove(path)
	}
}

func ownerOf(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
