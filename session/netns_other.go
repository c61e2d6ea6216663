//go:build !linux

package session

import (
	"context"
	"errors"
	"net"
)

var errNoNetNS = errors.New("network namespaces are Linux only")

func netnsDial(ctx context.Context, path, addr string) (net.Conn, error) { return nil, errNoNetNS }
func netnsListen(path, addr string) (net.Listener, error)                { return nil, errNoNetNS }
func netnsUsable() bool                                                  { return false }
