//go:build !unix

package bench

import (
	"fmt"
	"os/exec"
	"runtime"
)

// PeakRSS would return the peak resident set size of cmd's process, in
// KiB; it is not available on this system.
func PeakRSS(cmd *exec.Cmd) (int64, error) {
	return 0, fmt.Errorf("peak RSS: not measured on %s", runtime.GOOS)
}
