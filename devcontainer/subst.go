package devcontainer

import (
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// varRef matches one ${...} reference. Like the devcontainer CLI, a default
// value cannot contain '}'.
var varRef = lazyRegexp(`\$\{([^}]*)\}`)

// substituter replaces the variables known at parse time.
type substituter struct {
	ws          string                      // host workspace folder
	containerWS string                      // resolved workspaceFolder; "" while resolving it
	env         func(string) (string, bool) // nil means an empty environment
}

// replace substitutes the variables in s in one pass, so a value that itself
// contains "${...}" is not expanded again. Unknown references, and
// ${containerEnv:...}, are left as they are.
func (s *substituter) replace(in string) string {
	if !strings.Contains(in, "${") {
		return in
	}
	return varRef().ReplaceAllStringFunc(in, func(ref string) string {
		name, arg, hasArg := strings.Cut(ref[2:len(ref)-1], ":")
		switch {
		case name == "localWorkspaceFolder" && !hasArg:
			return s.ws
		case name == "localWorkspaceFolderBasename" && !hasArg:
			return filepath.Base(s.ws)
		case name == "containerWorkspaceFolder" && !hasArg && s.containerWS != "":
			return s.containerWS
		case name == "containerWorkspaceFolderBasename" && !hasArg && s.containerWS != "":
			return path.Base(s.containerWS)
		case (name == "localEnv" || name == "env") && hasArg:
			if v, ok := lookupVar(s.env, arg); ok {
				return v
			}
		}
		return ref
	})
}

// lookupVar resolves "VAR" or "VAR:default" the way the devcontainer CLI
// does: a set variable wins even when empty, then the default, then "".
// Unlike the CLI, the default is everything after the second colon, so
// defaults such as URLs keep their colons. ok is false for an empty name.
func lookupVar(env func(string) (string, bool), arg string) (string, bool) {
	name, def, _ := strings.Cut(arg, ":")
	if name == "" {
		return "", false
	}
	if env != nil {
		if v, ok := env(name); ok {
			return v, true
		}
	}
	return def, true
}

// walk substitutes every string value below n. Object keys are left alone,
// as the devcontainer CLI does.
func (s *substituter) walk(n *node) {
	switch n.kind {
	case '"':
		n.str = s.replace(n.str)
	case '[':
		for _, e := range n.elems {
			s.walk(e)
		}
	case '{':
		for _, m := range n.members {
			s.walk(m.val)
		}
	}
}

// ResolveRemoteEnv returns RemoteEnv with ${containerEnv:VAR} and
// ${containerEnv:VAR:default} replaced from containerEnv, the environment of
// the running container. A variable missing from containerEnv becomes its
// default, or "". c.RemoteEnv is not modified.
func (c *Config) ResolveRemoteEnv(containerEnv map[string]string) map[string]string {
	if c.RemoteEnv == nil {
		return nil
	}
	lookup := func(k string) (string, bool) {
		v, ok := containerEnv[k]
		return v, ok
	}
	out := make(map[string]string, len(c.RemoteEnv))
	for k, v := range c.RemoteEnv {
		if strings.Contains(v, "${containerEnv:") {
			v = varRef().ReplaceAllStringFunc(v, func(ref string) string {
				name, arg, hasArg := strings.Cut(ref[2:len(ref)-1], ":")
				if name == "containerEnv" && hasArg {
					if r, ok := lookupVar(lookup, arg); ok {
						return r
					}
				}
				return ref
			})
		}
		out[k] = v
	}
	return out
}

// lazyRegexp compiles expr on first use: a regexp compiled at start-up
// costs every berth process, `berth exec` from a shell included.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
