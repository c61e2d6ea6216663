package session

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// syncIgnore decides which workspace paths stay out of sync mode's copy.
//
// Two sets of rules apply, each with its own semantics, and a path is left
// out when either leaves it out:
//   - git's, exactly: .git/info/exclude, then every .gitignore from the root
//     down (a deeper file wins), with negation, anchoring and directory-only
//     patterns; a path under an ignored directory stays ignored, as in git;
//   - .dockerignore at the root, with Docker's semantics (every pattern is
//     anchored at the root), since projects already use it to keep
//     node_modules and build outputs out of what they send to an engine.
//
// .git itself never goes in, at any depth: it is large and the host owns it.
type syncIgnore struct {
	git    gitignore.Matcher
	docker *patternmatcher.PatternMatcher // nil without a .dockerignore
}

// loadSyncIgnore reads the ignore files of the workspace ws.
func loadSyncIgnore(ws string) (*syncIgnore, error) {
	ps, err := gitignore.ReadPatterns(osfs.New(ws), nil)
	if err != nil {
		return nil, fmt.Errorf("sync: reading .gitignore files: %w", err)
	}
	ig := &syncIgnore{git: gitignore.NewMatcher(ps)}
	data, err := os.ReadFile(filepath.Join(ws, ".dockerignore"))
	if errors.Is(err, os.ErrNotExist) {
		return ig, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	patterns, err := ignorefile.ReadAll(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("sync: .dockerignore: %w", err)
	}
	if len(patterns) > 0 {
		if ig.docker, err = patternmatcher.New(patterns); err != nil {
			return nil, fmt.Errorf("sync: .dockerignore: %w", err)
		}
	}
	return ig, nil
}

// ignored says whether the workspace-relative slash path rel stays out.
// isDir says rel is a directory, for patterns ending in a slash.
func (ig *syncIgnore) ignored(rel string, isDir bool) bool {
	if rel == "." || rel == "" {
		return false
	}
	parts := strings.Split(rel, "/")
	// git never looks inside an ignored directory, so no negation brings
	// back what is under one: test each parent first.
	for i := range parts {
		if parts[i] == ".git" {
			return true
		}
		if ig.git.Match(parts[:i+1], isDir || i < len(parts)-1) {
			return true
		}
	}
	if ig.docker != nil {
		ok, _ := ig.docker.MatchesOrParentMatches(rel)
		return ok
	}
	return false
}

// isIgnoreFile says a change to rel changes the rules.
func isIgnoreFile(rel string) bool {
	return path.Base(rel) == ".gitignore" || rel == ".dockerignore" || rel == ".git/info/exclude"
}
