package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// sh is a small POSIX-like shell, run as "sh -c SCRIPT [NAME [ARG…]]",
// "sh FILE [ARG…]" or "sh" (script on stdin); -e is honoured, -x and -u
// are accepted and ignored. The subset:
//
//   - commands separated by ; & newlines, && ||, and pipelines with |,
//     each perhaps negated with !
//   - words with '…', "…" and \ quoting; # comments
//   - $NAME ${NAME} ${NAME:-word} ${NAME-word} $? $$ $# $0-$9 $@ $* in
//     words and "…"; unquoted expansions split on blanks
//   - NAME=value before a command or on its own
//   - redirections < > >> and N>, N>>, N>&M for fds 0-2, with /dev/null,
//     /dev/stdout and /dev/stderr
//   - builtins exit, cd, export, unset, wait, set -e/+e
//
// There is no globbing: * ? [ stay as they are, as an unmatched pattern
// does. Anything else, such as if, for, while, case, functions, ( ), { },
// $( ), backquotes and here-documents, is a syntax error (exit 2) unless
// it is quoted. Commands run from the command table.
func sh(ctx context.Context, p *Proc) int {
	args := p.Argv[1:]
	s := &shell{p: p, env: slices.Clone(p.Env), cwd: p.Cwd, jobs: &jobs{}}
	cmdMode := false
options:
	for len(args) > 0 && len(args[0]) > 1 && (args[0][0] == '-' || args[0][0] == '+') {
		opt := args[0]
		args = args[1:]
		if opt == "--" {
			break
		}
		for _, c := range opt[1:] {
			switch c {
			case 'c':
				cmdMode = true
			case 'e':
				s.errexit = opt[0] == '-'
			case 'x', 'u':
			default:
				fmt.Fprintf(p.Stderr, "sh: -%c: unsupported option\n", c)
				return 2
			}
		}
		if cmdMode {
			break options
		}
	}
	var script string
	switch {
	case cmdMode:
		if len(args) == 0 {
			fmt.Fprintln(p.Stderr, "sh: -c requires an argument")
			return 2
		}
		script, s.args = args[0], args[1:]
	case len(args) > 0:
		data, err := p.ReadFile(args[0])
		if err != nil {
			fmt.Fprintf(p.Stderr, "sh: can't open '%s': %s\n", args[0], errText(err))
			return 127
		}
		script, s.args = string(data), args
	default:
		data, err := io.ReadAll(p.Stdin)
		if err != nil {
			return 1
		}
		script = string(data)
	}
	if len(s.args) == 0 {
		s.args = []string{"sh"}
	}
	prog, err := parseShell(script)
	if err != nil {
		fmt.Fprintf(p.Stderr, "sh: %v\n", err)
		return 2
	}
	s.runList(ctx, prog, stdio{p.Stdin, p.Stdout, p.Stderr})
	return s.status
}

// The parsed script.
type (
	andOr struct {
		pipes []pipeline
		ops   []string // "&&" or "||" before pipes[1:]
		bg    bool
	}
	pipeline struct {
		cmds []simple
		bang bool // ! before it: the status is negated
	}
	simple struct {
		words  []string // raw, expanded when run
		redirs []redir
	}
	redir struct {
		fd     int
		op     string // "<", ">", ">>" or ">&"
		target string // raw word, or the fd for ">&"
	}
)

// token is a word (raw, quotes kept) or an operator.
type token struct {
	word  string
	op    string // "" for a word
	redir *redir
}

// reserved are the words that start syntax this shell lacks.
var reserved = []string{"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "function", "{", "}", "select", "[["}

func lexShell(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '\\' && i+1 < len(src) && src[i+1] == '\n':
			i += 2
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '\n' || c == ';':
			if strings.HasPrefix(src[i:], ";;") {
				return nil, errors.New("syntax error: unexpected ;;")
			}
			toks = append(toks, token{op: string(c)})
			i++
		case c == '&' || c == '|':
			op := string(c)
			if i+1 < len(src) && src[i+1] == c {
				op += op
			} else if c == '&' && i+1 < len(src) && src[i+1] == '>' {
				return nil, errors.New("syntax error: &> is not supported")
			}
			toks = append(toks, token{op: op})
			i += len(op)
		case c == '(' || c == ')' || c == '`':
			return nil, fmt.Errorf("syntax error: %q is not supported", c)
		case c == '<' || c == '>' || (c >= '0' && c <= '9' && redirAhead(src[i:])):
			r, n, err := lexRedir(src[i:])
			if err != nil {
				return nil, err
			}
			i += n
			toks = append(toks, token{redir: r})
		default:
			n, err := wordLen(src[i:])
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{word: src[i : i+n]})
			i += n
		}
	}
	return toks, nil
}

// redirAhead reports whether s starts with digits and a redirection.
func redirAhead(s string) bool {
	j := 0
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	return j < len(s) && (s[j] == '<' || s[j] == '>')
}

// lexRedir reads "[N]op" and, unless op is ">&M", the target word after it.
func lexRedir(s string) (*redir, int, error) {
	i := 0
	for s[i] >= '0' && s[i] <= '9' {
		i++
	}
	r := &redir{fd: 1}
	if s[i] == '<' {
		r.fd = 0
	}
	if i > 0 {
		r.fd, _ = strconv.Atoi(s[:i])
	}
	if r.fd > 2 {
		return nil, 0, fmt.Errorf("syntax error: fd %d: only 0, 1 and 2 are supported", r.fd)
	}
	switch {
	case strings.HasPrefix(s[i:], ">>"):
		r.op = ">>"
	case strings.HasPrefix(s[i:], ">&"):
		r.op = ">&"
	case strings.HasPrefix(s[i:], "<<"), strings.HasPrefix(s[i:], "<&"), strings.HasPrefix(s[i:], "<>"), strings.HasPrefix(s[i:], ">|"):
		return nil, 0, fmt.Errorf("syntax error: %s is not supported", s[i:i+2])
	default:
		r.op = s[i : i+1]
	}
	i += len(r.op)
	if r.op == ">&" {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i {
			return nil, 0, errors.New("syntax error: >& needs an fd")
		}
		r.target = s[i:j]
		return r, j, nil
	}
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	n, err := wordLen(s[i:])
	if err != nil {
		return nil, 0, err
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("syntax error: %s needs a file", r.op)
	}
	r.target = s[i : i+n]
	return r, i + n, nil
}

// wordLen measures the word at the start of s, quotes included.
func wordLen(s string) (int, error) {
	i := 0
	for i < len(s) {
		switch c := s[i]; c {
		case ' ', '\t', '\r', '\n', ';', '&', '|', '<', '>':
			return i, nil
		case '(', ')', '`':
			return 0, fmt.Errorf("syntax error: %q is not supported", c)
		case '\\':
			i += 2
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return 0, errors.New("syntax error: unterminated '")
			}
			i += j + 2
		case '"':
			i++
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' {
					i++
				} else if s[i] == '`' || strings.HasPrefix(s[i:], "$(") {
					return 0, errors.New("syntax error: command substitution is not supported")
				}
				i++
			}
			if i >= len(s) {
				return 0, errors.New(`syntax error: unterminated "`)
			}
			i++
		case '$':
			switch {
			case strings.HasPrefix(s[i:], "$("):
				return 0, errors.New("syntax error: command substitution is not supported")
			case strings.HasPrefix(s[i:], "${"):
				j := strings.IndexByte(s[i:], '}')
				if j < 0 {
					return 0, errors.New("syntax error: missing }")
				}
				i += j + 1
			default:
				i++
			}
		default:
			i++
		}
	}
	return min(i, len(s)), nil
}

func parseShell(src string) ([]andOr, error) {
	toks, err := lexShell(src)
	if err != nil {
		return nil, err
	}
	var prog []andOr
	var cur andOr
	var pipe pipeline
	var cmd simple
	empty := func() bool { return len(cmd.words) == 0 && len(cmd.redirs) == 0 }
	endCmd := func(op string) error {
		if empty() {
			return fmt.Errorf("syntax error: unexpected %q", op)
		}
		pipe.cmds = append(pipe.cmds, cmd)
		cmd = simple{}
		return nil
	}
	for _, t := range toks {
		switch {
		case t.redir != nil:
			cmd.redirs = append(cmd.redirs, *t.redir)
		case t.op == "" && t.word == "!" && empty() && len(pipe.cmds) == 0 && !pipe.bang:
			pipe.bang = true
		case t.op == "":
			if len(cmd.words) == 0 && slices.Contains(reserved, t.word) {
				return nil, fmt.Errorf("syntax error: %q is not supported", t.word)
			}
			cmd.words = append(cmd.words, t.word)
		case t.op == "|":
			if err := endCmd(t.op); err != nil {
				return nil, err
			}
		case t.op == "&&" || t.op == "||":
			if err := endCmd(t.op); err != nil {
				return nil, err
			}
			cur.pipes, cur.ops = append(cur.pipes, pipe), append(cur.ops, t.op)
			pipe = pipeline{}
		default: // ; & newline
			if t.op == "\n" && empty() && !pipe.bang {
				continue // a blank line, or a line that ends in | && ||
			}
			if err := endCmd(t.op); err != nil {
				return nil, err
			}
			cur.pipes = append(cur.pipes, pipe)
			cur.bg = t.op == "&"
			prog = append(prog, cur)
			cur, pipe = andOr{}, pipeline{}
		}
	}
	switch {
	case !empty():
		pipe.cmds = append(pipe.cmds, cmd)
		cur.pipes = append(cur.pipes, pipe)
		prog = append(prog, cur)
	case len(pipe.cmds) > 0 || pipe.bang || len(cur.pipes) > 0:
		return nil, errors.New("syntax error: unexpected end of script")
	}
	return prog, nil
}

// shell is one run of sh; a background list runs on a copy.
type shell struct {
	p       *Proc
	env     []string
	cwd     string
	args    []string // $0, $1…
	status  int      // $?
	errexit bool
	exited  bool
	jobs    *jobs // the background lists this shell started
}

type jobs struct {
	mu   sync.Mutex // guards list
	list []chan struct{}
}

type stdio struct {
	in       io.Reader
	out, err io.Writer
}

func (s *shell) runList(ctx context.Context, prog []andOr, st stdio) {
	for _, item := range prog {
		if s.exited {
			return
		}
		if item.bg {
			s.background(ctx, item, st)
			s.status = 0
			continue
		}
		failed := s.runAndOr(ctx, item, st)
		if s.errexit && failed && !s.exited {
			s.exited = true
		}
	}
}

// background runs item on a copy of the shell, as a child of the exec, so
// the exec is not done before it is.
func (s *shell) background(ctx context.Context, item andOr, st stdio) {
	c := *s
	c.env = slices.Clone(s.env)
	c.args = slices.Clone(s.args)
	c.errexit = false
	c.jobs = &jobs{} // a subshell waits for its own children only
	done := make(chan struct{})
	s.jobs.mu.Lock()
	s.jobs.list = append(s.jobs.list, done)
	s.jobs.mu.Unlock()
	s.p.proc.kids.Add(1)
	go func() {
		defer s.p.proc.kids.Done()
		defer close(done)
		c.runAndOr(ctx, item, st)
	}()
}

// runAndOr runs one && || list and reports whether its last pipeline ran
// and failed, for -e.
func (s *shell) runAndOr(ctx context.Context, item andOr, st stdio) bool {
	failed := false
	for k, pipe := range item.pipes {
		if k > 0 {
			and := item.ops[k-1] == "&&"
			if and != (s.status == 0) {
				failed = false
				continue
			}
		}
		s.status = s.runPipeline(ctx, pipe, st)
		failed = s.status != 0 && k == len(item.pipes)-1
		if s.exited {
			break
		}
	}
	return failed
}

func (s *shell) runPipeline(ctx context.Context, pipe pipeline, st stdio) int {
	code := s.runCommands(ctx, pipe.cmds, st)
	if pipe.bang {
		if code == 0 {
			return 1
		}
		return 0
	}
	return code
}

func (s *shell) runCommands(ctx context.Context, pipe []simple, st stdio) int {
	if len(pipe) == 1 {
		return s.runSimple(ctx, pipe[0], st)
	}
	// Each command but the last runs on its own goroutine, on a copy of
	// the shell; the last runs here, as in bash's lastpipe.
	var wg sync.WaitGroup
	in := st.in
	for i, cmd := range pipe {
		std := stdio{in: in, out: st.out, err: st.err}
		if i == len(pipe)-1 {
			code := s.runSimple(ctx, cmd, std)
			closeReader(in, st.in)
			wg.Wait()
			return code
		}
		pr, pw := io.Pipe()
		std.out = pw
		c := *s
		c.env = slices.Clone(s.env)
		c.jobs = &jobs{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.runSimple(ctx, cmd, std)
			_ = pw.Close()
			closeReader(std.in, st.in)
		}()
		in = pr
	}
	return 0 // not reached
}

// closeReader closes r, a pipe between two commands, so its writer stops.
func closeReader(r, outer io.Reader) {
	if pr, ok := r.(*io.PipeReader); ok && r != outer {
		_ = pr.CloseWithError(io.ErrClosedPipe)
	}
}

func (s *shell) runSimple(ctx context.Context, cmd simple, std stdio) int {
	if ctx.Err() != nil {
		s.exited = true
		return 1
	}
	var assigns []string
	words := cmd.words
	for len(words) > 0 && isAssignment(words[0]) {
		name, raw, _ := strings.Cut(words[0], "=")
		val, err := s.expand(raw)
		if err != nil {
			fmt.Fprintf(std.err, "sh: %v\n", err)
			return 2
		}
		assigns = append(assigns, name+"="+strings.Join(val, " "))
		words = words[1:]
	}
	var argv []string
	for _, w := range words {
		fields, err := s.expand(w)
		if err != nil {
			fmt.Fprintf(std.err, "sh: %v\n", err)
			return 2
		}
		argv = append(argv, fields...)
	}
	std, err := s.redirect(cmd.redirs, std)
	if err != nil {
		fmt.Fprintf(std.err, "sh: %v\n", err)
		return 1
	}
	if len(argv) == 0 {
		s.env = mergeEnv(s.env, assigns)
		return 0
	}
	switch argv[0] {
	case "exit":
		code := s.status
		if len(argv) > 1 {
			n, err := strconv.Atoi(argv[1])
			if err != nil {
				fmt.Fprintf(std.err, "sh: exit: %s: numeric argument required\n", argv[1])
				n = 2
			}
			code = n & 0xff
		}
		s.exited = true
		s.status = code
		return code
	case "cd":
		arg := lookupOr(s.env, "HOME", "/")
		if len(argv) > 1 {
			arg = argv[1]
		}
		dir := s.path(arg)
		if !s.p.FS().isDir(dir) {
			fmt.Fprintf(std.err, "sh: cd: can't cd to %s: No such file or directory\n", arg)
			return 2
		}
		s.cwd = dir
		s.env = setEnv(s.env, "PWD", dir)
		return 0
	case "export":
		for _, a := range argv[1:] {
			if k, v, ok := strings.Cut(a, "="); ok {
				s.env = setEnv(s.env, k, v)
			}
		}
		s.env = mergeEnv(s.env, assigns)
		return 0
	case "unset":
		for _, a := range argv[1:] {
			s.env = slices.DeleteFunc(s.env, func(kv string) bool { return strings.HasPrefix(kv, a+"=") })
		}
		return 0
	case "set":
		for _, a := range argv[1:] {
			switch a {
			case "-e":
				s.errexit = true
			case "+e":
				s.errexit = false
			}
		}
		return 0
	case "wait":
		s.jobs.mu.Lock()
		list := slices.Clone(s.jobs.list)
		s.jobs.mu.Unlock()
		for _, done := range list {
			<-done
		}
		return 0
	}
	q := s.p.Sub(argv...)
	q.Env = mergeEnv(s.env, assigns)
	q.Cwd = s.cwd
	q.Stdin, q.Stdout, q.Stderr = std.in, std.out, std.err
	return q.Run(ctx)
}

func lookupOr(env []string, key, def string) string {
	if v, ok := lookupEnv(env, key); ok {
		return v
	}
	return def
}

func isAssignment(w string) bool {
	name, _, ok := strings.Cut(w, "=")
	return ok && isName(name)
}

func isName(s string) bool {
	for i, c := range s {
		if c != '_' && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

func (s *shell) path(name string) string {
	if path.IsAbs(name) {
		return path.Clean(name)
	}
	return path.Join(s.cwd, name)
}

// redirect applies redirections to std, left to right.
func (s *shell) redirect(rs []redir, std stdio) (stdio, error) {
	for _, r := range rs {
		if r.op == ">&" {
			var w io.Writer
			switch r.target {
			case "1":
				w = std.out
			case "2":
				w = std.err
			default:
				return std, fmt.Errorf("%s: bad file descriptor", r.target)
			}
			if r.fd == 1 {
				std.out = w
			} else if r.fd == 2 {
				std.err = w
			}
			continue
		}
		fields, err := s.expand(r.target)
		if err != nil {
			return std, err
		}
		if len(fields) != 1 {
			return std, fmt.Errorf("%s: ambiguous redirect", r.target)
		}
		name := fields[0]
		if r.op == "<" {
			in, err := s.input(name, std)
			if err != nil {
				return std, err
			}
			std.in = in
			continue
		}
		w, err := s.output(name, r.op == ">>", std)
		if err != nil {
			return std, err
		}
		switch r.fd {
		case 0:
			return std, errors.New("writing to fd 0 is not supported")
		case 1:
			std.out = w
		case 2:
			std.err = w
		}
	}
	return std, nil
}

func (s *shell) input(name string, std stdio) (io.Reader, error) {
	switch name {
	case "/dev/null":
		return eofReader{}, nil
	case "/dev/stdin":
		return std.in, nil
	}
	data, err := s.p.FS().ReadFile(s.path(name))
	if err != nil {
		return nil, fmt.Errorf("can't open %s: %s", name, errText(err))
	}
	return bytes.NewReader(data), nil
}

func (s *shell) output(name string, appending bool, std stdio) (io.Writer, error) {
	switch name {
	case "/dev/null":
		return io.Discard, nil
	case "/dev/stdout":
		return std.out, nil
	case "/dev/stderr":
		return std.err, nil
	}
	p := s.path(name)
	var err error
	if appending {
		err = s.p.FS().appendFile(p, nil)
	} else {
		err = s.p.FS().WriteFile(p, nil, 0o644)
	}
	if err != nil {
		return nil, fmt.Errorf("can't create %s: %s", name, errText(err))
	}
	return fileWriter{fs: s.p.FS(), name: p}, nil
}

// fileWriter appends every write to a file of the instance.
type fileWriter struct {
	fs   *FS
	name string
}

func (w fileWriter) Write(b []byte) (int, error) {
	if err := w.fs.appendFile(w.name, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// expand turns a raw word into fields: quotes removed, parameters
// expanded, unquoted expansions split on blanks.
func (s *shell) expand(raw string) ([]string, error) {
	var fields []string
	var cur strings.Builder
	have := false
	flush := func() {
		if have {
			fields = append(fields, cur.String())
			cur.Reset()
			have = false
		}
	}
	for i := 0; i < len(raw); {
		switch c := raw[i]; c {
		case '\'':
			j := strings.IndexByte(raw[i+1:], '\'')
			cur.WriteString(raw[i+1 : i+1+j])
			have = true
			i += j + 2
		case '"':
			have = true
			i++
			for i < len(raw) && raw[i] != '"' {
				switch {
				case raw[i] == '\\' && i+1 < len(raw) && strings.IndexByte("\"\\$`\n", raw[i+1]) >= 0:
					cur.WriteByte(raw[i+1])
					i += 2
				case raw[i] == '$':
					v, n, err := s.dollar(raw[i:])
					if err != nil {
						return nil, err
					}
					cur.WriteString(v)
					i += n
				default:
					cur.WriteByte(raw[i])
					i++
				}
			}
			i++
		case '\\':
			if i+1 < len(raw) {
				cur.WriteByte(raw[i+1])
				have = true
			}
			i += 2
		case '$':
			v, n, err := s.dollar(raw[i:])
			if err != nil {
				return nil, err
			}
			i += n
			if n == 1 { // a lone $
				cur.WriteByte('$')
				have = true
				continue
			}
			if v != "" && strings.IndexByte(" \t\n", v[0]) >= 0 {
				flush()
			}
			for k, part := range strings.Fields(v) {
				if k > 0 {
					flush()
				}
				cur.WriteString(part)
				have = true
			}
			if v != "" && strings.IndexByte(" \t\n", v[len(v)-1]) >= 0 {
				flush()
			}
		default:
			cur.WriteByte(c)
			have = true
			i++
		}
	}
	flush()
	return fields, nil
}

// dollar expands the parameter at the start of s ("$…") and says how many
// bytes it took; 1 means a lone "$".
func (s *shell) dollar(str string) (string, int, error) {
	if len(str) < 2 {
		return "", 1, nil
	}
	switch c := str[1]; {
	case c == '{':
		end := strings.IndexByte(str, '}')
		if end < 0 {
			return "", 0, errors.New("syntax error: missing }")
		}
		inner := str[2:end]
		name, def, op := inner, "", ""
		if i := strings.IndexAny(inner, ":-"); i >= 0 {
			name, op = inner[:i], inner[i:]
			switch {
			case strings.HasPrefix(op, ":-"):
				def, op = op[2:], ":-"
			case strings.HasPrefix(op, "-"):
				def, op = op[1:], "-"
			default:
				return "", 0, fmt.Errorf("${%s}: bad substitution", inner)
			}
		}
		v, set := s.param(name)
		if !set && name != "" && !isName(name) && len(name) != 1 {
			return "", 0, fmt.Errorf("${%s}: bad substitution", inner)
		}
		if (op == ":-" && v == "") || (op == "-" && !set) {
			v = def
		}
		return v, end + 1, nil
	case c == '?' || c == '$' || c == '#' || c == '@' || c == '*' || (c >= '0' && c <= '9'):
		v, _ := s.param(str[1:2])
		return v, 2, nil
	case c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		j := 2
		for j < len(str) && isName(str[1:j+1]) {
			j++
		}
		v, _ := s.param(str[1:j])
		return v, j, nil
	}
	return "", 1, nil
}

// param returns a parameter's value and whether it is set.
func (s *shell) param(name string) (string, bool) {
	switch name {
	case "?":
		return strconv.Itoa(s.status), true
	case "$":
		return strconv.Itoa(s.p.PID), true
	case "#":
		return strconv.Itoa(len(s.args) - 1), true
	case "@", "*":
		return strings.Join(s.args[1:], " "), true
	}
	if n, err := strconv.Atoi(name); err == nil {
		if n < len(s.args) {
			return s.args[n], true
		}
		return "", false
	}
	return lookupEnv(s.env, name)
}
