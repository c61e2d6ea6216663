// Package secrets holds the values berth hands processes as environment
// variables without writing them down: it reads a --secrets-file, checks
// secrets given on the wire, and its Masker hides their values wherever
// berth logs or reports text.
package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrBadSecrets means a secrets file, or the secrets of an initialize, is
// not an object of environment variables with string values. Its messages
// name variables, never values.
var ErrBadSecrets = errors.New("bad secrets")

// MaxFile bounds the size of a secrets file.
const MaxFile = 1 << 20

// ReadFile reads a secrets file: a JSON object whose values are strings,
// as the devcontainer CLI's --secrets-file takes.
func ReadFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxFile {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadSecrets, path, MaxFile)
	}
	env, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return env, nil
}

// Parse decodes a JSON object of string values and checks it with Check.
// Its errors never quote the input, which holds the values.
func Parse(data []byte) (map[string]string, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%w: want a JSON object of strings, like {\"NAME\": \"value\"}", ErrBadSecrets)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%w: not valid JSON (at byte %d)", ErrBadSecrets, se.Offset)
		}
		return nil, fmt.Errorf("%w: want a JSON object of strings, like {\"NAME\": \"value\"}", ErrBadSecrets)
	}
	env := make(map[string]string, len(raw))
	for k, v := range raw {
		var s string
		if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
			return nil, fmt.Errorf("%w: the value of %q must be a string", ErrBadSecrets, k)
		}
		env[k] = s
	}
	if err := Check(env); err != nil {
		return nil, err
	}
	return env, nil
}

// Check reports whether every name can be an environment variable and
// every value can be passed to a process.
func Check(env map[string]string) error {
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("%w: %q is not a valid environment variable name", ErrBadSecrets, k)
		}
		if strings.Contains(v, "\x00") {
			return fmt.Errorf("%w: the value of %q contains a NUL byte", ErrBadSecrets, k)
		}
	}
	return nil
}

// Merge returns the layers' variables, a later layer winning a name.
func Merge(layers ...map[string]string) map[string]string {
	n := 0
	for _, l := range layers {
		n += len(l)
	}
	if n == 0 {
		return nil
	}
	out := make(map[string]string, n)
	for _, l := range layers {
		for k, v := range l {
			out[k] = v
		}
	}
	return out
}
