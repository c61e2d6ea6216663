package plugins

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// MapStrings returns the JSON value raw with f applied to every string
// value in it (object keys are kept): berth maps host paths in params to
// the container, and container paths in results to the host, with it.
// Numbers keep their text.
func MapStrings(raw json.RawMessage, f func(string) string) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return raw, nil
	}
	if !json.Valid(raw) {
		return nil, errors.New("not one JSON value")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	changed := false
	v = walk(v, func(s string) string {
		t := f(s)
		changed = changed || t != s
		return t
	})
	if !changed {
		return raw, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return json.RawMessage(bytes.TrimRight(buf.Bytes(), "\n")), nil
}

func walk(v any, f func(string) string) any {
	switch t := v.(type) {
	case string:
		return f(t)
	case []any:
		for i := range t {
			t[i] = walk(t[i], f)
		}
	case map[string]any:
		for k, e := range t {
			t[k] = walk(e, f)
		}
	}
	return v
}
