package pathmap

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

// fuzzMounts include a root mount on each flavour, so every absolute host path
// is covered and ToContainer must always succeed; the other mounts nest on
// both sides and one hides part of another in the container.
var fuzzMounts = map[Flavor][]Mount{
	Posix: {
		{Host: "/", Container: "/host"},
		{Host: "/home/u/proj", Container: "/workspaces/proj"},
		{Host: "/home/u/proj/vendor", Container: "/vendor"},
		{Host: "/home/u/cache", Container: "/workspaces/proj/.cache"},
		{Host: "/home/u/my proj#1", Container: "/workspaces/my proj#1"},
	},
	Windows: {
		{Host: `C:\`, Container: "/mnt/c"},
		{Host: `D:\`, Container: "/mnt/d"},
		{Host: `C:\Users\x\proj`, Container: "/workspaces/proj"},
		{Host: `c:\users\x\proj\vendor`, Container: "/vendor"},
		{Host: `D:\cache`, Container: "/workspaces/proj/.cache"},
	},
}

// cleanHost is an independent statement of what a host path cleans to.
func cleanHost(f Flavor, p string) string {
	if f == Posix {
		return path.Clean(p)
	}
	return p[:2] + strings.ReplaceAll(path.Clean(strings.ReplaceAll(p[2:], `\`, "/")), "/", `\`)
}

// encodeAll percent-encodes every byte but letters and digits: valid, but not
// the form pathmap writes, so decoding is tested separately from encoding.
func encodeAll(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; isLetter(c) || '0' <= c && c <= '9' || c == '/' {
			sb.WriteByte(c)
		} else {
			sb.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
		}
	}
	return sb.String()
}

func FuzzRoundTrip(f *testing.F) {
	for _, rel := range []string{
		"", "a.py", "src/main.go", "a b/c#d%e?f", "../x", "../../../../etc", "./a/../../proj/b",
		"vendor/lib", ".cache/x", "..", "caf\u00e9/\u20ac.txt", "a//b///", "sub\\dir\\f", "\xff\xfe",
		"../X/PROJ/a", "c:/x", "%41", "x?y#z", ":", "..\\..\\Users\\X\\proj\\vendor\\q",
	} {
		for sel := range uint8(8) {
			f.Add(sel, rel)
		}
	}
	mappers := map[Flavor]*Mapper{}
	for fl, ms := range fuzzMounts {
		mappers[fl] = mustNew(f, fl, ms)
	}
	f.Fuzz(func(t *testing.T, sel uint8, rel string) {
		fl := Flavor(sel & 1)
		asURI := sel&2 != 0
		m := mappers[fl]
		ms := fuzzMounts[fl]
		base := ms[int(sel>>2)%len(ms)].Host
		sep := "/"
		if fl == Windows {
			sep = `\`
		}
		p := strings.TrimSuffix(base, sep) + sep + rel
		want := cleanHost(fl, p)
		in := p
		if asURI {
			up := p
			if fl == Windows {
				up = "/" + strings.ReplaceAll(p, `\`, "/")
			}
			in = "file://" + encodeAll(up)
		}
		c, ok := m.ToContainer(in)
		if !ok {
			t.Fatalf("ToContainer(%q) failed; every path is under a mount", in)
		}
		if asURI != strings.HasPrefix(c, "file:///") {
			t.Fatalf("ToContainer(%q) = %q, answered in the wrong form", in, c)
		}
		h, ok := m.ToHost(c)
		if !ok {
			t.Fatalf("ToHost(%q) failed (from ToContainer(%q))", c, in)
		}
		got := h
		if asURI {
			for i := 0; i < len(h); i++ {
				if b := h[i]; b == '%' || b == '/' || b == ':' || strings.IndexByte("-._~", b) >= 0 || isLetter(b) || '0' <= b && b <= '9' {
					continue
				}
				t.Fatalf("ToHost(%q) = %q: byte %q is not percent-encoded", c, h, h[i])
			}
			u, err := url.Parse(h)
			if err != nil || u.Scheme != "file" || u.Host != "" {
				t.Fatalf("ToHost(%q) = %q: not a file URI: %v", c, h, err)
			}
			got = u.Path
			if fl == Windows {
				if !strings.HasPrefix(h, "file:///") || len(got) < 3 || got[2] != ':' || lowerASCII(got[1]) != got[1] {
					t.Fatalf("ToHost(%q) = %q: not VS Code's file:///c%%3A/ form", c, h)
				}
				got = strings.ReplaceAll(got[1:], "/", `\`)
			}
		}
		if fl == Windows && !strings.EqualFold(got, want) || fl == Posix && got != want {
			t.Fatalf("round trip of %q: ToContainer = %q, ToHost = %q; want %q", in, c, got, want)
		}
	})
}

func FuzzWriterChunks(f *testing.F) {
	seeds := []string{
		"/workspaces/proj/a.py:12:3: error: x\n",
		`File "/workspaces/proj/a.py", line 3`,
		"x file:///workspaces/proj/a%20b.py#L3 /workspaces/proj",
		"/workspaces/proj/.cache/x /workspaces/proj/.cach /vendor",
		"\x1b[1m/workspaces/proj/a.c\x1b[0m ‘/mnt/d/x’",
		"file:///%77orkspaces/proj%2 file:/// /x/workspaces/proj fil",
		"/workspaces/my proj#1/a /mnt/c/Users /host/etc",
		"PATH=/a:/workspaces/proj/bin:/mnt/d",
	}
	for i, s := range seeds {
		f.Add(uint8(i), s, []byte{1, 7, 3})
		f.Add(uint8(i+1), s, []byte{0})
		f.Add(uint8(i+2), s, []byte{})
	}
	var mappers []*Mapper
	for _, fl := range []Flavor{Posix, Windows} {
		mappers = append(mappers, mustNew(f, fl, fuzzMounts[fl]))
	}
	mappers = append(mappers, mustNew(f, Posix, posixMounts), mustNew(f, Windows, windowsMounts))
	f.Fuzz(func(t *testing.T, sel uint8, text string, cuts []byte) {
		m := mappers[int(sel)%len(mappers)]
		sizes := make([]int, len(cuts))
		for i, c := range cuts {
			sizes[i] = int(c%64) + 1
		}
		want := m.RewriteToHost(text)
		if got := writeChunks(t, m, []byte(text), sizes); got != want {
			t.Fatalf("chunks %v of %q:\n got %q\nwant %q", sizes, text, got, want)
		}
	})
}
