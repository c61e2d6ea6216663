package plugins

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParse: any file an image carries parses without panicking; every
// error is a *FileError, and every plugin is valid.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"[plugin.hello]\npath = \"/x\"\nexports = [\"a\", \"b\"]\n",
		"[plugin.a]\npath = \"/a\"\nexports = [\"m\"]\nmode = \"rpc\"\n[plugin.b]\npath = \"b\"\n",
		"plugin = { p = { path = \"/p\", exports = [\"a\"] } }",
		"[plugin.x\n", "[[plugin]]\n", "plugin = 3", "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, errs := Parse("/f.toml", data)
		for _, err := range errs {
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FileError", err)
			}
		}
		for _, p := range ps {
			if !validName(p.Name) || p.Path == "" || p.Path[0] != '/' || len(p.Exports) == 0 || (p.Mode != ModeExec && p.Mode != ModeRPC) {
				t.Fatalf("invalid plugin accepted: %+v", p)
			}
		}
	})
}

// FuzzMapStrings: mapping with the identity keeps any JSON value as it is,
// and mapping every string gives valid JSON.
func FuzzMapStrings(f *testing.F) {
	for _, seed := range []string{`null`, `{"a":["/x",1.5e3,{"b":"c"}]}`, `"\u00e9<&>"`, `[1,2`, ` {"a":1} `} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		same, err := MapStrings(data, func(s string) string { return s })
		if err == nil && string(same) != string(data) {
			t.Fatalf("identity changed %q to %q", data, same)
		}
		out, err := MapStrings(data, func(s string) string { return s + "/x" })
		if err == nil && len(bytes.TrimSpace(out)) > 0 && !json.Valid(out) {
			t.Fatalf("mapped %q to invalid JSON %q", data, out)
		}
	})
}
