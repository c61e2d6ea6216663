package lsp

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthdev/berth/pathmap"
)

// initParams is what the proxy reads of initialize's params.
type initParams struct {
	RootURI          *string `json:"rootUri"`
	RootPath         *string `json:"rootPath"`
	WorkspaceFolders []struct {
		URI string `json:"uri"`
	} `json:"workspaceFolders"`
}

// rootOf returns the host directory an initialize request names: its
// rootUri, else its first workspace folder, else its rootPath; "" if none.
func rootOf(params json.RawMessage) string {
	var p initParams
	if json.Unmarshal(params, &p) != nil {
		return ""
	}
	uris := []string{}
	if p.RootURI != nil {
		uris = append(uris, *p.RootURI)
	}
	for _, f := range p.WorkspaceFolders {
		uris = append(uris, f.URI)
	}
	for _, u := range uris {
		if dir := hostPathOfURI(u); dir != "" {
			return dir
		}
	}
	if p.RootPath != nil && filepath.IsAbs(*p.RootPath) {
		return filepath.Clean(*p.RootPath)
	}
	return ""
}

// hostPathOfURI is the host path of a file URI, "" if it has none.
func hostPathOfURI(u string) string {
	p, _, ok := pathmap.ParseFileURI(u)
	if !ok {
		return ""
	}
	if pathmap.HostFlavor() == pathmap.Windows {
		// file:///c%3A/dir
		p = strings.TrimPrefix(p, "/")
	}
	p = filepath.FromSlash(p)
	if !filepath.IsAbs(p) {
		return ""
	}
	return filepath.Clean(p)
}

// FindWorkspace finds the workspace of an editor's root directory: the
// nearest directory at or above it that holds a devcontainer
// configuration (.devcontainer/ or .devcontainer.json) or a .git; "" when
// there is none.
func FindWorkspace(root string) string {
	if root == "" {
		return ""
	}
	for dir := filepath.Clean(root); ; {
		for _, marker := range []string{".devcontainer", ".devcontainer.json", ".git"} {
			if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
				return dir
			}
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
}
