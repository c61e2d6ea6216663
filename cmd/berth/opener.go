package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/rpc"
	"github.com/sourcegraph/jsonrpc2"
)

// envOpener names the variable that overrides the host's URL opener.
const envOpener = "BERTH_OPENER"

// openerTimeout bounds the opener: xdg-open and open return at once.
const openerTimeout = 10 * time.Second

// opener is the host command that opens a URL: $BERTH_OPENER (a program
// and its arguments, split on spaces), else open on macOS and xdg-open
// elsewhere.
func opener() []string {
	if v := strings.Fields(os.Getenv(envOpener)); len(v) > 0 {
		return v
	}
	if runtime.GOOS == "darwin" {
		return []string{"open"}
	}
	return []string{"xdg-open"}
}

// answer answers the in-process server's requests: window/showDocument,
// the container's $BROWSER, opens the URL with the host's opener. The URL
// reaches the host already (berth forwarded a localhost port); only
// http(s) is opened.
func (cli *cliClient) answer(ctx context.Context, method string, raw json.RawMessage) (any, error) {
	if method != "window/showDocument" {
		return nil, &jsonrpc2.Error{Code: rpc.CodeMethodNotFound, Message: "the berth command answers no " + method}
	}
	var p rpc.ShowDocumentParams
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	if err := agent.CheckBrowseURL(p.URI); err != nil {
		return rpc.ShowDocumentResult{}, nil
	}
	if u, err := url.Parse(p.URI); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return rpc.ShowDocumentResult{}, nil
	}
	argv := append(opener(), p.URI)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), openerTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// stdout is the command's result: the opener gets none of it.
	cmd.Stdout, cmd.Stderr = cli.stderr, cli.stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			fmt.Fprintf(cli.stderr, "berth: cannot open %s: %v (set %s to a program that opens URLs)\n", p.URI, err, envOpener)
		}
		return rpc.ShowDocumentResult{}, nil
	}
	return rpc.ShowDocumentResult{Success: true}, nil
}
