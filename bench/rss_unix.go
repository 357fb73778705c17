//go:build unix

package bench

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
)

// PeakRSS runs cmd to its end and returns the largest resident set size
// its process reached, in KiB, as the kernel accounts it (getrusage's
// ru_maxrss of the child).
func PeakRSS(cmd *exec.Cmd) (int64, error) {
	if err := cmd.Run(); err != nil {
		return 0, err
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, fmt.Errorf("peak RSS: no resource usage on %s", runtime.GOOS)
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return int64(ru.Maxrss) / 1024, nil // bytes there, KiB on Linux and the BSDs
	}
	return int64(ru.Maxrss), nil
}
