package rpc

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// The protocol reference must name every method and error code: editors
// and outside clients code against it.
func TestProtocolDocCoversTheProtocol(t *testing.T) {
	data, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, m := range MethodNames() {
		if !strings.Contains(doc, "`"+m+"`") {
			t.Errorf("docs/protocol.md does not document method %s", m)
		}
	}
	for _, n := range []string{"berth/output", "berth/exit", "berth/configChanged", "textDocument/publishDiagnostics", "$/progress", "window/logMessage"} {
		if !strings.Contains(doc, n) {
			t.Errorf("docs/protocol.md does not document notification %s", n)
		}
	}
	codes := []int64{
		CodeParseError, CodeInvalidRequest, CodeMethodNotFound, CodeInvalidParams, CodeInternalError,
		CodeServerNotInitialized, CodeRequestCancelled, CodeBackendUnavailable, CodeImageNotFound,
		CodeNoSuchProcess, CodeNoWorkspace, CodeInstanceNotFound, CodeCommandNotFound, CodeProcessExited,
		CodeForeignInstance, CodeNotSupported, CodeShuttingDown, CodeInstanceNotRunning, CodeNeedsAgent,
		CodeNoSuchTunnel, CodeBindFailed, CodeAgentLost, CodeBadConfig, CodeBuildFailed,
		CodeRequestFailed, CodeUnauthorized, CodeAmbiguousConfig, CodeUnhealthy,
		CodeNoSuchPlugin, CodePluginFailed, CodePluginTimeout,
	}
	for _, c := range codes {
		if !strings.Contains(doc, "| "+strconv.FormatInt(c, 10)+" |") {
			t.Errorf("docs/protocol.md has no row for error code %d", c)
		}
	}
}
