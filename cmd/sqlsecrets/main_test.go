package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
)

// The tests run the real binary, built once by TestMain, against a fresh
// schema of a real PostgreSQL per test (internal/pgtest).

// binary is the path of the sqlsecrets binary under test.
var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sqlsecrets-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot make a temporary directory:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	binary = filepath.Join(dir, "sqlsecrets")
	args := []string{"build", "-o", binary}
	if raceEnabled() {
		args = append(args, "-race") // catch races in the binary as well
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "cannot build sqlsecrets:", err)
		return 1
	}
	return m.Run()
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// Fake master keys, obviously not real ones, in the three accepted forms.
// fakeKey pads a label to 32 bytes.
func fakeKey(label string) []byte {
	return []byte((label + strings.Repeat(".", 32))[:32])
}

var (
	keyOld   = "base64:" + base64.StdEncoding.EncodeToString(fakeKey("fake-test-key-old"))
	keyNew   = hex.EncodeToString(fakeKey("fake-test-key-new"))
	keyOther = string(fakeKey("fake-test-key-other-raw"))
)

// keyTexts are every text of the fake keys that no output may contain.
var keyTexts = func() []string {
	var out []string
	for _, label := range []string{"fake-test-key-old", "fake-test-key-new", "fake-test-key-other-raw"} {
		raw := fakeKey(label)
		out = append(out, string(raw), base64.StdEncoding.EncodeToString(raw), hex.EncodeToString(raw))
	}
	return out
}()

// env is the environment a run of the binary gets, and nothing else.
type env struct {
	url, key, previous string
}

// db returns a migrated schema of its own for the test, the environment
// that points at it with keyOld as the key, and a pool on it.
func db(t *testing.T) (env, *pgxpool.Pool) {
	t.Helper()
	url, pool := pgtest.Migrated(t)
	return env{url: url, key: keyOld}, pool
}

func (e env) with(key, previous string) env {
	e.key, e.previous = key, previous
	return e
}

func (e env) list() []string {
	// A binary built with -race otherwise sleeps a second before exiting.
	out := []string{"GORACE=atexit_sleep_ms=0 halt_on_error=1"}
	add := func(name, value string) {
		if value != "" {
			out = append(out, name+"="+value)
		}
	}
	add("DATABASE_URL", e.url)
	add("SECRETS_KEY", e.key)
	add("SECRETS_PREVIOUS_KEYS", e.previous)
	return out
}

// result is what one run of the binary did.
type result struct {
	Code   int
	Stdout string
	Stderr string
}

// run runs the binary with args, stdin and the environment e.
func run(t *testing.T, e env, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = e.list()
	cmd.Stdin = strings.NewReader(stdin) // a pipe, not a terminal
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{Stdout: stdout.String(), Stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running sqlsecrets %s: %v", args[0], err)
	}
	return r
}

// must runs the binary and fails the test unless it exits with code.
func must(t *testing.T, code int, e env, stdin string, args ...string) result {
	t.Helper()
	r := run(t, e, stdin, args...)
	if r.Code != code {
		t.Fatalf("sqlsecrets %s: exit status %d, want %d; stderr:\n%s",
			args[0], r.Code, code, scrub(r.Stderr))
	}
	return r
}

// scrub replaces the texts of the fake keys in s, for failure messages.
// Outputs other than get's never hold values (TestNoLeaks checks that), so
// stderr can be shown once scrubbed.
func scrub(s string) string {
	for _, k := range keyTexts {
		s = strings.ReplaceAll(s, k, "<key>")
	}
	return s
}

// sameValue compares a value printed by get with the one expected. On a
// difference it says where, not what: test values stand for secrets.
func sameValue(t *testing.T, what, got, want string) {
	t.Helper()
	if got == want {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Errorf("%s: output differs from the value set, first at byte %d (got %d bytes, want %d)",
		what, i, len(got), len(want))
}

// checkMessages checks that stderr is made of "sqlsecrets: " lines and
// that error and hint lines are lowercase, without a trailing period.
func checkMessages(t *testing.T, what, stderr string) {
	t.Helper()
	for line := range strings.Lines(stderr) {
		line = strings.TrimSuffix(line, "\n")
		if !strings.HasPrefix(line, "sqlsecrets: ") {
			t.Errorf("%s: stderr line without the sqlsecrets: prefix: %q", what, scrub(line))
			continue
		}
		for _, p := range []string{"sqlsecrets: error: ", "sqlsecrets: hint: "} {
			msg, ok := strings.CutPrefix(line, p)
			if !ok {
				continue
			}
			// A message may start with the name of an environment variable.
			lower := msg == "" || strings.ToLower(msg[:1]) == msg[:1] ||
				strings.HasPrefix(msg, "DATABASE_URL") || strings.HasPrefix(msg, "SECRETS_")
			if msg == "" || !lower || strings.HasSuffix(msg, ".") {
				t.Errorf("%s: message not lowercase or ends with a period: %q", what, scrub(line))
			}
		}
	}
}
