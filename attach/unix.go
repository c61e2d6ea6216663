package attach

import (
	"fmt"
	"net"
	"os"

	"github.com/berthdev/berth/rpc"
)

// checkPeer admits a unix-socket peer that runs as berth's user or as
// root, by the credentials the kernel recorded when it connected.
func checkPeer(nc net.Conn) error {
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("%w: not a unix socket", rpc.ErrUnauthorized)
	}
	uid, err := PeerUID(uc)
	if err != nil {
		return fmt.Errorf("%w: cannot read the peer's credentials: %v", rpc.ErrUnauthorized, err)
	}
	return admitUID(uid, os.Geteuid())
}

// admitUID admits the same user, or root.
func admitUID(peer, self int) error {
	if peer == self || peer == 0 {
		return nil
	}
	return fmt.Errorf("%w: peer uid %d is neither berth's user (uid %d) nor root", rpc.ErrUnauthorized, peer, self)
}
