package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pgCluster is a throwaway PostgreSQL cluster that belongs to one test: its
// own data directory, its own server on a free port of 127.0.0.1, stopped
// and removed when the test ends. Tests that stop and restart a server use
// it, never the shared server on 5432.
type pgCluster struct {
	bin   string   // directory holding initdb, pg_ctl and postgres
	dir   string   // data/, the socket and server.log; removed at cleanup
	port  int      // TCP port on 127.0.0.1
	runAs []string // prefix that runs a program as the cluster's OS user
	url   string   // connection URL of the postgres database, trust auth
}

// pgCtlTimeout bounds every pg_ctl call.
const pgCtlTimeout = 90 * time.Second

// startCluster initialises and starts a cluster for t, and registers its
// stop and removal on t.Cleanup. Without PostgreSQL server programs it
// skips t, or fails it when CI is true. Running as root, the cluster runs
// as the postgres OS user, in a directory that user owns.
func startCluster(t *testing.T) *pgCluster {
	t.Helper()
	bin, err := pgBinDir()
	if err != nil {
		ci, _ := strconv.ParseBool(os.Getenv("CI"))
		if ci {
			t.Fatalf("no PostgreSQL server programs for a throwaway cluster: %v "+
				"(CI is set, so this fails instead of skipping)", err)
		}
		t.Skipf("no PostgreSQL server programs for a throwaway cluster: %v; "+
			"install postgresql to run this test", err)
	}

	c := &pgCluster{bin: bin}
	c.dir, c.runAs, err = clusterDir()
	if err != nil {
		t.Fatalf("throwaway cluster: %v", err)
	}
	t.Cleanup(c.remove)

	c.initdb(t)
	for try := 0; ; try++ {
		if c.port, err = freePort(); err != nil {
			t.Fatalf("throwaway cluster: no free port: %v", err)
		}
		err = c.pgCtl("start", "-l", c.logPath(), "-w", "-t", "60",
			"-o", "-p "+strconv.Itoa(c.port))
		if err == nil {
			break
		}
		// The port can be taken between the check and the start: try another.
		if try < 5 && strings.Contains(c.log(), "could not bind") {
			_ = c.pgCtl("stop", "-m", "immediate", "-w")
			continue
		}
		t.Fatalf("throwaway cluster did not start: %v\nserver log:\n%s", err, cliScrub(c.log()))
	}
	c.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	return c
}

// pgBinDir finds the PostgreSQL server programs: pg_config --bindir, then
// the newest /usr/lib/postgresql/*/bin, then initdb on PATH.
func pgBinDir() (string, error) {
	has := func(dir string) bool {
		for _, p := range []string{"initdb", "pg_ctl", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("initdb, pg_ctl and postgres not found " +
		"(tried pg_config --bindir, /usr/lib/postgresql/*/bin and PATH)")
}

// pgMajor returns the version number in /usr/lib/postgresql/NN/bin.
func pgMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// clusterDir makes the cluster's directory and returns it with the prefix
// that runs programs as its owner. initdb and postgres refuse to run as
// root: then the directory goes to the postgres OS user.
func clusterDir() (string, []string, error) {
	dir, err := os.MkdirTemp("", "sqlsecrets-reliability-pg-")
	if err != nil {
		return "", nil, err
	}
	if os.Geteuid() != 0 {
		return dir, nil, nil
	}
	fail := func(err error) (string, []string, error) {
		os.RemoveAll(dir)
		return "", nil, err
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fail(fmt.Errorf("running as root and no postgres OS user to run as: %w", err))
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		return fail(errors.New("running as root and runuser is missing"))
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return fail(err)
	}
	runAs := []string{"runuser", "-u", "postgres", "--"}
	if exec.Command("runuser", "-u", "postgres", "--", "test", "-w", dir).Run() != nil {
		// TMPDIR is out of the postgres user's reach: /tmp is not.
		os.RemoveAll(dir)
		if dir, err = os.MkdirTemp("/tmp", "sqlsecrets-reliability-pg-"); err != nil {
			return "", nil, err
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return fail(err)
		}
	}
	return dir, runAs, nil
}

// initdb creates the cluster: trust auth, loopback TCP only, the socket in
// the cluster's own directory. fsync is off for speed; every commit still
// reaches the operating system, so a crash of the server (not of the
// machine) keeps every acknowledged commit.
func (c *pgCluster) initdb(t *testing.T) {
	t.Helper()
	out, err := c.run(filepath.Join(c.bin, "initdb"), "-D", c.dataPath(), "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync")
	if err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("\n# throwaway cluster of the reliability suite\n"+
		"listen_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nfsync = off\n", c.dir)
	path := filepath.Join(c.dataPath(), "postgresql.conf")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("initdb: configuring the cluster: %v", err)
	}
}

// stop stops the server with pg_ctl's shutdown mode ("fast" ends every
// session and checkpoints; "immediate" kills the server like a crash) and
// waits until it is down. It is safe to call from any goroutine.
func (c *pgCluster) stop(mode string) error {
	if err := c.pgCtl("stop", "-m", mode, "-w", "-t", "60"); err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %w", mode, err)
	}
	return nil
}

// restart starts the stopped server again on the same port, waiting until
// it accepts connections (after crash recovery, if it needs one).
func (c *pgCluster) restart() error {
	err := c.pgCtl("start", "-l", c.logPath(), "-w", "-t", "60", "-o", "-p "+strconv.Itoa(c.port))
	if err != nil {
		return fmt.Errorf("pg_ctl start: %w", err)
	}
	return nil
}

// remove stops the server, if it runs, with its own pg_ctl, and deletes
// the cluster's directory.
func (c *pgCluster) remove() {
	if _, err := os.Stat(filepath.Join(c.dataPath(), "postmaster.pid")); err == nil {
		_ = c.pgCtl("stop", "-m", "immediate", "-w", "-t", "60")
	}
	os.RemoveAll(c.dir)
}

// log returns the server log.
func (c *pgCluster) log() string {
	b, _ := os.ReadFile(c.logPath())
	return string(b)
}

func (c *pgCluster) dataPath() string { return filepath.Join(c.dir, "data") }
func (c *pgCluster) logPath() string  { return filepath.Join(c.dir, "server.log") }

// pgCtl runs pg_ctl on the cluster's data directory.
func (c *pgCluster) pgCtl(args ...string) error {
	args = append([]string{"-D", c.dataPath()}, args...)
	out, err := c.run(filepath.Join(c.bin, "pg_ctl"), args...)
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// run runs program as the cluster's owner and returns its output.
func (c *pgCluster) run(program string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pgCtlTimeout)
	defer cancel()
	full := append(append(append([]string{}, c.runAs...), program), args...)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.WaitDelay = time.Second // in case a child of pg_ctl keeps our pipe open
	return cmd.CombinedOutput()
}

// freePort returns a TCP port of 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
