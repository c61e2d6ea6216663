package memory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"
)

// builtins returns the command table every Backend starts with. Each
// command does the common case of its coreutils namesake:
//
//	true, false, :      exit 0, exit 1, exit 0
//	echo [-n] [-e] ARG… the arguments, space separated
//	printf FORMAT ARG…  %s %d %i %x %o %c %b %q %% and \ escapes; the format repeats
//	cat [FILE|-]…       files (relative to the cwd) or stdin to stdout
//	sleep N[s|m|h|d]    sleeps, or "infinity"; ends early when ctx ends
//	env [K=V…] [CMD…]   prints the environment, or runs CMD with K=V added
//	pwd                 the cwd
//	id [-u|-g|-un|-gn]  the user
//	test, [             -e -f -d -s -n -z, = != and -eq -ne -lt -le -gt -ge, !
//	mkdir [-p] DIR…     directories
//	rm [-r] [-f] PATH…  files and directories
//	ps [-o …]           "PID COMMAND" and a line per running command, options ignored
//	sh                  the small shell in sh.go
func builtins() map[string]Command {
	return map[string]Command{
		"true":   func(context.Context, *Proc) int { return 0 },
		":":      func(context.Context, *Proc) int { return 0 },
		"false":  func(context.Context, *Proc) int { return 1 },
		"echo":   echo,
		"printf": printf,
		"cat":    cat,
		"sleep":  sleep,
		"env":    env,
		"pwd":    func(_ context.Context, p *Proc) int { fmt.Fprintln(p.Stdout, p.Cwd); return 0 },
		"id":     id,
		"test":   test,
		"[":      test,
		"mkdir":  mkdir,
		"rm":     rm,
		"ps":     ps,
		"sh":     sh,
	}
}

// fail writes "name: msg" on stderr and returns code.
func fail(p *Proc, code int, format string, args ...any) int {
	fmt.Fprintf(p.Stderr, "%s: %s\n", p.Argv[0], fmt.Sprintf(format, args...))
	return code
}

// errText is the message coreutils gives for err.
func errText(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "No such file or directory"
	case errors.Is(err, fs.ErrExist):
		return "File exists"
	case errors.Is(err, errIsDir):
		return "Is a directory"
	case errors.Is(err, errNotDir):
		return "Not a directory"
	case errors.Is(err, errNotEmpty):
		return "Directory not empty"
	}
	return err.Error()
}

func echo(_ context.Context, p *Proc) int {
	args := p.Argv[1:]
	newline, escapes := true, false
	for len(args) > 0 && (args[0] == "-n" || args[0] == "-e" || args[0] == "-ne" || args[0] == "-en") {
		newline = newline && !strings.Contains(args[0], "n")
		escapes = escapes || strings.Contains(args[0], "e")
		args = args[1:]
	}
	s := strings.Join(args, " ")
	if escapes {
		s, _ = unescape(s)
	}
	if newline {
		s += "\n"
	}
	if _, err := io.WriteString(p.Stdout, s); err != nil {
		return 1
	}
	return 0
}

// unescape expands backslash escapes; stop reports a \c.
func unescape(s string) (out string, stop bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch c := s[i]; c {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case 'e':
			b.WriteByte(0x1b)
		case '\\':
			b.WriteByte('\\')
		case 'c':
			return b.String(), true
		case '0':
			n, j := 0, i+1
			for ; j < len(s) && j < i+4 && s[j] >= '0' && s[j] <= '7'; j++ {
				n = n*8 + int(s[j]-'0')
			}
			b.WriteByte(byte(n))
			i = j - 1
		default:
			b.WriteByte('\\')
			b.WriteByte(c)
		}
	}
	return b.String(), false
}

func printf(_ context.Context, p *Proc) int {
	if len(p.Argv) < 2 {
		return fail(p, 2, "usage: printf FORMAT [ARGUMENT]...")
	}
	format, args := p.Argv[1], p.Argv[2:]
	var out strings.Builder
	code := 0
	for {
		used, stop, err := printfOnce(&out, format, args)
		if err != nil {
			fmt.Fprintf(p.Stderr, "printf: %v\n", err)
			code = 1
		}
		args = args[used:]
		if stop || used == 0 || len(args) == 0 {
			break
		}
	}
	if _, err := io.WriteString(p.Stdout, out.String()); err != nil {
		return 1
	}
	return code
}

// printfOnce formats format once, consuming args, and says how many it
// used; a missing argument is "" or 0.
func printfOnce(out *strings.Builder, format string, args []string) (used int, stop bool, err error) {
	next := func() string {
		if used < len(args) {
			used++
			return args[used-1]
		}
		return ""
	}
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c == '\\' && i+1 < len(format) {
			j := i + 2
			if format[i+1] == '0' { // \0NNN
				for j < len(format) && j < i+5 && format[j] >= '0' && format[j] <= '7' {
					j++
				}
			}
			s, _ := unescape(format[i:j])
			out.WriteString(s)
			i = j - 1
			continue
		}
		if c != '%' {
			out.WriteByte(c)
			continue
		}
		j := i + 1
		for j < len(format) && strings.IndexByte("-+ #0123456789.", format[j]) >= 0 {
			j++
		}
		if j == len(format) {
			return used, false, fmt.Errorf("%q: missing format character", format[i:])
		}
		flags, verb := format[i+1:j], format[j]
		i = j
		switch verb {
		case '%':
			out.WriteByte('%')
		case 's':
			fmt.Fprintf(out, "%"+flags+"s", next())
		case 'q':
			fmt.Fprintf(out, "%"+flags+"s", strconv.Quote(next()))
		case 'c':
			if s := next(); s != "" {
				out.WriteByte(s[0])
			}
		case 'b':
			s, stopped := unescape(next())
			fmt.Fprintf(out, "%"+flags+"s", s)
			if stopped {
				return used, true, nil
			}
		case 'd', 'i', 'x', 'X', 'o':
			a := next()
			n, perr := strconv.ParseInt(a, 0, 64)
			if perr != nil && a != "" {
				err = fmt.Errorf("%q: invalid number", a)
			}
			if verb == 'i' {
				verb = 'd'
			}
			fmt.Fprintf(out, "%"+flags+string(verb), n)
		default:
			return used, false, fmt.Errorf("%%%c: invalid directive", verb)
		}
	}
	return used, false, err
}

func cat(ctx context.Context, p *Proc) int {
	files := p.Argv[1:]
	if len(files) == 0 {
		files = []string{"-"}
	}
	code := 0
	for _, f := range files {
		if ctx.Err() != nil {
			return 1
		}
		if f == "-" {
			if _, err := io.Copy(p.Stdout, p.Stdin); err != nil {
				return 1
			}
			continue
		}
		data, err := p.ReadFile(f)
		if err != nil {
			code = fail(p, 1, "%s: %s", f, errText(err))
			continue
		}
		if _, err := p.Stdout.Write(data); err != nil {
			return 1
		}
	}
	return code
}

func sleep(ctx context.Context, p *Proc) int {
	if len(p.Argv) < 2 {
		return fail(p, 1, "missing operand")
	}
	var total time.Duration
	for _, a := range p.Argv[1:] {
		if a == "infinity" {
			total = time.Duration(1<<63 - 1)
			break
		}
		unit := time.Second
		switch {
		case strings.HasSuffix(a, "s"):
			a = strings.TrimSuffix(a, "s")
		case strings.HasSuffix(a, "m"):
			a, unit = strings.TrimSuffix(a, "m"), time.Minute
		case strings.HasSuffix(a, "h"):
			a, unit = strings.TrimSuffix(a, "h"), time.Hour
		case strings.HasSuffix(a, "d"):
			a, unit = strings.TrimSuffix(a, "d"), 24*time.Hour
		}
		f, err := strconv.ParseFloat(a, 64)
		if err != nil || f < 0 {
			return fail(p, 1, "invalid time interval %q", a)
		}
		total += time.Duration(f * float64(unit))
	}
	t := time.NewTimer(total)
	defer t.Stop()
	select {
	case <-t.C:
		return 0
	case <-ctx.Done():
		return 1
	}
}

func env(ctx context.Context, p *Proc) int {
	args := p.Argv[1:]
	q := p.Sub()
	for len(args) > 0 && strings.Contains(args[0], "=") && !strings.HasPrefix(args[0], "=") {
		k, v, _ := strings.Cut(args[0], "=")
		q.Setenv(k, v)
		args = args[1:]
	}
	if len(args) == 0 {
		for _, kv := range q.Env {
			fmt.Fprintln(p.Stdout, kv)
		}
		return 0
	}
	q.Argv = args
	return q.Run(ctx)
}

func id(_ context.Context, p *Proc) int {
	var flags string
	for _, a := range p.Argv[1:] {
		flags += strings.TrimPrefix(a, "-")
	}
	group := strconv.Itoa(p.GID)
	if p.GID == p.UID {
		group = p.User
	}
	switch {
	case flags == "":
		fmt.Fprintf(p.Stdout, "uid=%d(%s) gid=%d(%s)\n", p.UID, p.User, p.GID, group)
	case strings.Contains(flags, "u") && strings.Contains(flags, "n"):
		fmt.Fprintln(p.Stdout, p.User)
	case strings.Contains(flags, "g") && strings.Contains(flags, "n"):
		fmt.Fprintln(p.Stdout, group)
	case strings.Contains(flags, "u"):
		fmt.Fprintln(p.Stdout, p.UID)
	case strings.Contains(flags, "g"):
		fmt.Fprintln(p.Stdout, p.GID)
	default:
		return fail(p, 1, "unsupported option %q", flags)
	}
	return 0
}

func test(_ context.Context, p *Proc) int {
	args := p.Argv[1:]
	if p.Argv[0] == "[" {
		if len(args) == 0 || args[len(args)-1] != "]" {
			return fail(p, 2, "missing ]")
		}
		args = args[:len(args)-1]
	}
	ok, err := evalTest(p, args)
	if err != nil {
		return fail(p, 2, "%v", err)
	}
	if ok {
		return 0
	}
	return 1
}

func evalTest(p *Proc, args []string) (bool, error) {
	if len(args) > 0 && args[0] == "!" {
		ok, err := evalTest(p, args[1:])
		return !ok, err
	}
	switch len(args) {
	case 0:
		return false, nil
	case 1:
		return args[0] != "", nil
	case 2:
		op, a := args[0], args[1]
		switch op {
		case "-n":
			return a != "", nil
		case "-z":
			return a == "", nil
		}
		fi, err := p.FS().Stat(p.Path(a))
		switch op {
		case "-e":
			return err == nil, nil
		case "-f":
			return err == nil && fi.Mode().IsRegular(), nil
		case "-d":
			return err == nil && fi.IsDir(), nil
		case "-s":
			return err == nil && fi.Size() > 0, nil
		case "-L", "-h":
			return err == nil && fi.Mode()&fs.ModeSymlink != 0, nil
		}
		return false, fmt.Errorf("%s: unknown operator", op)
	case 3:
		a, op, c := args[0], args[1], args[2]
		switch op {
		case "=", "==":
			return a == c, nil
		case "!=":
			return a != c, nil
		}
		x, errA := strconv.Atoi(a)
		y, errC := strconv.Atoi(c)
		if errA != nil || errC != nil {
			return false, fmt.Errorf("%s %s %s: integer expression expected", a, op, c)
		}
		switch op {
		case "-eq":
			return x == y, nil
		case "-ne":
			return x != y, nil
		case "-lt":
			return x < y, nil
		case "-le":
			return x <= y, nil
		case "-gt":
			return x > y, nil
		case "-ge":
			return x >= y, nil
		}
		return false, fmt.Errorf("%s: unknown operator", op)
	}
	return false, errors.New("too many arguments")
}

func mkdir(_ context.Context, p *Proc) int {
	parents := false
	code := 0
	for _, a := range p.Argv[1:] {
		if a == "-p" {
			parents = true
			continue
		}
		var err error
		if parents {
			err = p.FS().MkdirAll(p.Path(a), 0o755)
		} else {
			err = p.FS().Mkdir(p.Path(a), 0o755)
		}
		if err != nil {
			code = fail(p, 1, "can't create directory '%s': %s", a, errText(err))
		}
	}
	return code
}

func rm(_ context.Context, p *Proc) int {
	recursive, force := false, false
	var paths []string
	for _, a := range p.Argv[1:] {
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			recursive = recursive || strings.ContainsAny(a, "rR")
			force = force || strings.Contains(a, "f")
			continue
		}
		paths = append(paths, a)
	}
	code := 0
	for _, a := range paths {
		name := p.Path(a)
		fi, err := p.FS().Stat(name)
		switch {
		case err != nil:
			if !force {
				code = fail(p, 1, "can't remove '%s': %s", a, errText(err))
			}
		case fi.IsDir() && !recursive:
			code = fail(p, 1, "'%s' is a directory", a)
		default:
			if err := p.FS().RemoveAll(name); err != nil {
				code = fail(p, 1, "can't remove '%s': %s", a, errText(err))
			}
		}
	}
	return code
}

func ps(_ context.Context, p *Proc) int {
	p.b.mu.Lock()
	pids := make([]int, 0, len(p.in.pids))
	for pid := range p.in.pids {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	var out strings.Builder
	fmt.Fprintf(&out, "%5s %s\n%5d %s\n", "PID", "COMMAND", 1, p.in.init)
	for _, pid := range pids {
		fmt.Fprintf(&out, "%5d %s\n", pid, p.in.pids[pid])
	}
	p.b.mu.Unlock()
	if _, err := io.WriteString(p.Stdout, out.String()); err != nil {
		return 1
	}
	return 0
}
