package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/berthdev/berth/session"
)

// PortProcess is the process that listens on a Port.
type PortProcess struct {
	PID  int    `json:"pid"`
	Name string `json:"name"`
}

// Port is a TCP port listening in a workspace's container.
type Port struct {
	Port          int          `json:"port"`
	BindAddress   string       `json:"bindAddress"`
	Process       *PortProcess `json:"process,omitempty"`
	Label         string       `json:"label,omitempty"`
	OnAutoForward string       `json:"onAutoForward"`
	TunnelID      string       `json:"tunnelId,omitempty"`
	HostPort      int          `json:"hostPort,omitempty"`
}

// PortsResult answers berth/ports.
type PortsResult struct {
	Ports    []Port       `json:"ports"`
	Forwards []TunnelInfo `json:"forwards"`
}

// PortsChangedParams is the berth/portsChanged notification.
type PortsChangedParams struct {
	Workspace string `json:"workspace"`
	Ports     []Port `json:"ports"`
}

// ShowDocumentParams is LSP's window/showDocument, which berth sends the
// editor for the container's $BROWSER.
type ShowDocumentParams struct {
	URI      string `json:"uri"`
	External bool   `json:"external,omitempty"`
}

// ShowDocumentResult answers window/showDocument.
type ShowDocumentResult struct {
	Success bool `json:"success"`
}

func wirePorts(ps []session.Port) []Port {
	out := make([]Port, 0, len(ps))
	for _, p := range ps {
		wp := Port{Port: p.Port, BindAddress: p.BindAddress, Label: p.Label, OnAutoForward: p.OnAutoForward, TunnelID: p.TunnelID, HostPort: p.HostPort}
		if p.PID > 0 {
			wp.Process = &PortProcess{PID: p.PID, Name: p.Process}
		}
		out = append(out, wp)
	}
	return out
}

func portsMethod(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p WorkspaceParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	_, client, _ := c.session()
	ports, fwds := client.Ports(ctx, ws)
	res := PortsResult{Ports: wirePorts(ports), Forwards: make([]TunnelInfo, 0, len(fwds))}
	for _, t := range fwds {
		res.Forwards = append(res.Forwards, TunnelInfo{
			TunnelID: t.ID, Workspace: t.Workspace, Direction: t.Direction, Host: "127.0.0.1",
			HostPort: t.HostPort, ContainerHost: t.ContainerHost, ContainerPort: t.ContainerPort, Active: t.Active, Auto: t.Auto,
		})
	}
	return res, nil
}

// PortsChanged implements session.PortSink.
func (s sink) PortsChanged(ws string, ports []session.Port) {
	s.c.notify("berth/portsChanged", PortsChangedParams{Workspace: ws, Ports: wirePorts(ports)})
}

// errNotShown is an editor that did not open a URL.
var errNotShown = errors.New("the editor did not open it")

// ShowDocument implements session.PortSink: the editor, or the berth
// command's own client, opens url.
func (s sink) ShowDocument(ctx context.Context, ws, url string) error {
	rc := s.c.conn()
	if rc == nil {
		return errNotShown
	}
	var res ShowDocumentResult
	if err := rc.Call(ctx, "window/showDocument", ShowDocumentParams{URI: url, External: true}, &res); err != nil {
		return fmt.Errorf("window/showDocument: %w", err)
	}
	if !res.Success {
		return errNotShown
	}
	return nil
}
