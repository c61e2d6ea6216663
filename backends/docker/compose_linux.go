package docker

import (
	"os/exec"
	"syscall"
)

// setDeathSignal kills a Compose run when berth dies, even by SIGKILL, so
// that no Compose run outlives the berth that started it.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
