package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// machine describes where the run happens: the date, the system, the
// processors, Go and PostgreSQL with the settings that move its figures.
func machine(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	var version, fsync, syncCommit, buffers string
	err := pool.QueryRow(ctx, `SELECT current_setting('server_version'),
		current_setting('fsync'), current_setting('synchronous_commit'),
		current_setting('shared_buffers')`).Scan(&version, &fsync, &syncCommit, &buffers)
	if err != nil {
		return nil, fmt.Errorf("reading server settings: %w", err)
	}
	cc := pool.Config().ConnConfig
	return []string{
		"date: " + time.Now().UTC().Format("2006-01-02 15:04 MST"),
		fmt.Sprintf("machine: %s/%s, %d processors (nproc), %s",
			runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel()),
		"Go: " + runtime.Version(),
		fmt.Sprintf("PostgreSQL: %s at %s:%d (fsync %s, synchronous_commit %s, "+
			"shared_buffers %s)", version, cc.Host, cc.Port, fsync, syncCommit, buffers),
	}, nil
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "CPU model
// unknown" where there is none.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "CPU model unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "CPU model unknown"
}
