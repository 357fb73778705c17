package reliability_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// The "command line" kind: the sqlsecrets binary, run as a user would,
// with bad flags, arguments, JSON, owners and environments, wrong keys,
// tampered rows, a missing table and an unreachable server. Exit statuses
// must follow the contract (1 failure, 2 usage, 3 not found), usage errors
// must come with a hint, a failed get must print nothing on standard
// output, and no output may hold a value, a key or a database password.

// cliKind is the name of this file's kind in the figures.
const cliKind = "command line"

// cliCall is how one run of the binary is made.
type cliCall struct {
	env   []string // the whole environment of the run, besides GORACE
	stdin string
	dir   string // working directory; the test's own if empty
}

// cliRun is what one run of the binary did. code is -1 when it could not
// be run at all; stderr then says why.
type cliRun struct {
	code           int
	stdout, stderr string
}

// cliBinary is the sqlsecrets binary that the running tests share, and
// how many of them use it: the last one to finish removes it, so tests
// that run at the same time build it once.
var cliBinary struct {
	mu    sync.Mutex
	dir   string
	path  string
	users int
}

// buildCLI returns the path of the sqlsecrets binary, built for t and the
// tests running beside it, and removed when the last of them ends. With
// -race, the binary is built with -race too.
func buildCLI(t *testing.T) string {
	t.Helper()
	b := &cliBinary
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.users == 0 {
		dir, err := os.MkdirTemp("", "sqlsecrets-reliability-cli-")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "sqlsecrets")
		args := []string{"build", "-o", path}
		if cliRaceBuild() {
			args = append(args, "-race")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go",
			append(args, "github.com/sqlsecrets/sqlsecrets/cmd/sqlsecrets")...).CombinedOutput()
		if err != nil {
			os.RemoveAll(dir)
			t.Fatalf("building sqlsecrets: %v\n%s", err, out)
		}
		b.dir, b.path = dir, path
	}
	b.users++
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.users--; b.users == 0 {
			os.RemoveAll(b.dir)
			b.dir, b.path = "", ""
		}
	})
	return b.path
}

// cliRaceBuild reports whether the test binary was built with -race.
func cliRaceBuild() bool {
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

// runCLI runs the binary with args. Standard input is a pipe, never a
// terminal. It is safe to call from any goroutine.
func runCLI(t *testing.T, bin string, c cliCall, args ...string) cliRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// A binary built with -race would otherwise sleep a second at exit.
	cmd.Env = append([]string{"GORACE=atexit_sleep_ms=0 halt_on_error=1"}, c.env...)
	cmd.Dir = c.dir
	cmd.Stdin = strings.NewReader(c.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliRun{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		r.code = -1
		r.stderr += "\n(could not run sqlsecrets: " + err.Error() + ")"
	}
	return r
}

// cliT is one subtest's view of the binary: it counts every run and
// checks every output for leaks.
type cliT struct {
	t   *testing.T
	f   *figures
	bin string
}

// run runs the binary and checks its outputs for leaks; valueOut says
// that stdout legitimately holds a value or a key.
func (c cliT) run(call cliCall, valueOut bool, args ...string) cliRun {
	c.t.Helper()
	c.f.operations.Add(1)
	r := runCLI(c.t, c.bin, call, args...)
	what := "sqlsecrets " + cliShow(args)
	if r.code < 0 {
		c.t.Errorf("%s: %s", what, cliScrub(r.stderr))
	}
	checkLeaks(c.t, c.f, what+": stderr", r.stderr)
	if !valueOut {
		checkLeaks(c.t, c.f, what+": stdout", r.stdout)
	}
	return r
}

// expect runs the binary, wants exit status code, and for a failure an
// error line on stderr and, but for verify's and rotate's report, an
// empty stdout.
func (c cliT) expect(name string, code int, call cliCall, args ...string) cliRun {
	c.t.Helper()
	r := c.run(call, false, args...)
	if r.code != code {
		c.t.Errorf("%s: exit status %d, want %d; stderr:\n%s", name, r.code, code,
			cliScrub(r.stderr))
	}
	if code != 0 {
		// verify and rotate report on stdout even when a row fails.
		if report := args[0] == "verify" || args[0] == "rotate"; r.stdout != "" && !report {
			c.t.Errorf("%s: exit status %d with %d bytes on stdout, want none",
				name, r.code, len(r.stdout))
		}
		if !strings.Contains(r.stderr, "sqlsecrets: error: ") {
			c.t.Errorf("%s: no error line on stderr:\n%s", name, cliScrub(r.stderr))
		}
	}
	return r
}

// cliShow returns args for a failure message, each cut short: the
// arguments of a test may hold registered secrets, and a message that
// quoted one would count as a leak of the test itself.
func cliShow(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if len(a) > 12 || strings.Contains(a, "s3cr3t") {
			a = a[:min(len(a), 5)] + "…"
		}
		out[i] = strconv.Quote(a)
	}
	return strings.Join(out, " ")
}

// cliKeys are three registered master keys, one in each accepted form.
type cliKeys struct {
	b64, hex, raw string
	rawA          []byte // the bytes of b64
}

func newCLIKeys(t *testing.T) cliKeys {
	t.Helper()
	var k cliKeys
	k.rawA = make([]byte, 32)
	rawB := make([]byte, 32)
	if _, err := rand.Read(k.rawA); err != nil {
		t.Fatal(err)
	}
	if _, err := rand.Read(rawB); err != nil {
		t.Fatal(err)
	}
	k.b64 = secretKey("base64:"+base64.StdEncoding.EncodeToString(k.rawA), k.rawA)
	k.hex = secretKey(hex.EncodeToString(rawB), rawB)
	raw := []byte("s3cr3t-raw-" + strings.Repeat("x", 32))[:32]
	copy(raw[11:], hex.EncodeToString(rawB[:11])) // distinct per test
	k.raw = secretKey(string(raw), raw)
	return k
}

// TestCommandLine runs the sqlsecrets binary through usage errors, wrong
// keys, tampered rows, missing secrets, a missing table, an unreachable
// server and ordinary use, checking exit statuses, hints, an empty stdout
// on every failure, and that no output leaks a value, a key or a password.
func TestCommandLine(t *testing.T) {
	t.Parallel()
	c := cliT{t: t, f: kind(cliKind), bin: buildCLI(t)}
	for name, fn := range map[string]func(cliT){
		"usage":           cliUsage,
		"unreadable":      cliUnreadable,
		"database errors": cliDatabaseErrors,
		"bad imports":     cliBadImports,
		"ordinary use":    cliOrdinaryUse,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(cliT{t: t, f: c.f, bin: c.bin})
		})
	}
}

// cliUsage: every bad flag, argument, JSON value, owner, command and
// environment is exit status 2 with a hint, writes nothing, and echoes no
// secret it was given.
func cliUsage(c cliT) {
	t := c.t
	url, pool := pgtest.Migrated(t)
	keys := newCLIKeys(t)
	env := []string{"DATABASE_URL=" + url, "SECRETS_KEY=" + keys.b64}
	withEnv := func(vars ...string) []string { return append(append([]string{}, env...), vars...) }

	s := func(what string) string { return fltTag("cli-" + what) }
	badJSON := []struct{ name, text string }{
		{"unterminated object", `{"token": "` + s("obj") + `"`},
		{"bare word", s("bare")},
		{"empty", ""},
		{"blank", " \n\t "},
		{"unterminated array", `["` + s("arr") + `", 1`},
		{"leading zero", "0123"},
		{"NaN", "NaN"},
		{"unterminated string", `"` + s("str")},
		{"two values", `{"a": "` + s("two") + `"} {"b": 1}`},
		{"trailing comma", `{"token": "` + s("comma") + `",}`},
		{"single quotes", `{'token': '` + s("quote") + `'}`},
		{"invalid UTF-8 in a string", "\"" + s("utf8") + "\xff\xfe\""},
		{"control character", "\"" + s("ctl") + "\x01\""},
	}
	badOwners := []string{"abc", "-1", "1.5", "99999999999999999999", "9223372036854775808",
		"", " 7", "7 ", "+7", "0x1f", "1e3", "٣", "-0", "NaN"}

	type usage struct {
		name  string
		env   []string
		stdin string
		args  []string
	}
	cases := []usage{
		{"unknown command", env, "", []string{"frobnicate"}},
		{"unknown command, wrong case", env, "", []string{"GET", "k"}},
		{"unknown command, near miss", env, "", []string{"sets", "k", "1"}},
		{"unknown flag before the command", env, "", []string{"--verbose", "get", "k"}},
		{"unknown flag with a secret value", env, "",
			[]string{"set", "--value=" + s("flagval"), "k"}},
		{"unknown flag of set", env, "", []string{"set", "--bogus", "k", "1"}},
		{"unknown flag of get", env, "", []string{"get", "--nope", "k"}},
		{"unknown flag of delete", env, "", []string{"delete", "--force", "k"}},
		{"unknown flag of list", env, "", []string{"list", "--everything"}},
		{"unknown flag of rotate", env, "", []string{"rotate", "--fast"}},
		{"unknown flag of verify", env, "", []string{"verify", "-x"}},
		{"unknown flag of keygen", env, "", []string{"keygen", "--bits", "256"}},
		{"unknown flag of migrate", env, "", []string{"migrate", "--yes"}},
		{"unknown flag of import", env, "", []string{"import", "--batch-size", "5", "-"}},
		{"flag without its value", env, "", []string{"get", "--group"}},
		{"owner flag without its value", env, "", []string{"set", "k", "--owner"}},
		{"flag after the key", env, "", []string{"get", "k", "--owner", "1"}},
		{"flag after the key, with a secret", env, "",
			[]string{"set", "k", "--string=" + s("afterkey")}},
		{"set without a key", env, "", []string{"set"}},
		{"set --string without a key", env, "", []string{"set", "--string"}},
		{"get without a key", env, "", []string{"get"}},
		{"delete without a key", env, "", []string{"delete"}},
		{"import without a file", env, "", []string{"import"}},
		{"set with two values", env, "",
			[]string{"set", "k", `"` + s("extra1") + `"`, `"` + s("extra2") + `"`}},
		{"get with two keys", env, "", []string{"get", "a", "b"}},
		{"delete with two keys", env, "", []string{"delete", "a", "b"}},
		{"import with two files", env, "", []string{"import", "a", "b"}},
		{"rotate with an argument", env, "", []string{"rotate", "now"}},
		{"verify with an argument", env, "", []string{"verify", "all"}},
		{"list with an argument", env, "", []string{"list", "everything"}},
		{"keygen with an argument", env, "", []string{"keygen", "256"}},
		{"migrate with two actions", env, "", []string{"migrate", "up", "down"}},
		{"migrate with an unknown action", env, "", []string{"migrate", "sideways"}},
		{"help of two commands", env, "", []string{"help", "get", "set"}},
		{"help of an unknown command", env, "", []string{"help", "frobnicate"}},
		{"list --all with --group", env, "", []string{"list", "--all", "--group", "g"}},
		{"rotate --batch 0", env, "", []string{"rotate", "--batch", "0"}},
		{"verify --batch -5", env, "", []string{"verify", "--batch", "-5"}},
		{"import --batch abc", env, "", []string{"import", "--batch", "abc", "-"}},
		{"empty key", env, "", []string{"get", ""}},
		{"key of 151 characters", env, "", []string{"get", strings.Repeat("k", 151)}},
		{"key not UTF-8", env, "", []string{"set", "k\xff", "1"}},
		{"empty group", env, "", []string{"get", "--group", "", "k"}},
		{"group of 151 characters", env, "",
			[]string{"delete", "--group", strings.Repeat("g", 151), "k"}},
		{"a value over 1 MiB on stdin", env, `"` + s("big") + strings.Repeat("x", 1<<20) + `"`,
			[]string{"set", "k"}},
		{"a value over 16 MiB on stdin", env, s("huge") + strings.Repeat("x", 16<<20),
			[]string{"set", "--string", "k"}},
		{"a value nested 1001 deep", env, strings.Repeat("[", 1001) + `"` + s("deep") + `"` +
			strings.Repeat("]", 1001), []string{"set", "k"}},
		{"a --string value not UTF-8", env, s("notutf8") + "\xff\xfe",
			[]string{"set", "--string", "k"}},
		{"no DATABASE_URL", []string{"SECRETS_KEY=" + keys.b64}, "", []string{"get", "k"}},
		{"no SECRETS_KEY", []string{"DATABASE_URL=" + url}, "", []string{"get", "k"}},
		{"short SECRETS_KEY", []string{"DATABASE_URL=" + url,
			"SECRETS_KEY=" + s("short")}, "", []string{"get", "k"}},
		{"SECRETS_KEY with a newline", []string{"DATABASE_URL=" + url,
			"SECRETS_KEY=" + keys.hex + "\n"}, "", []string{"get", "k"}},
		{"SECRETS_KEY of 33 raw bytes", []string{"DATABASE_URL=" + url,
			"SECRETS_KEY=" + keys.raw + "x"}, "", []string{"rotate"}},
		{"base64 key of 31 bytes", []string{"DATABASE_URL=" + url, "SECRETS_KEY=base64:" +
			base64.StdEncoding.EncodeToString(keys.rawA[:31])}, "", []string{"verify"}},
		{"previous keys with a space", withEnv("SECRETS_PREVIOUS_KEYS=" + keys.hex + ", " +
			keys.raw), "", []string{"get", "k"}},
		{"previous key equal to the current one", withEnv("SECRETS_PREVIOUS_KEYS=" + keys.b64),
			"", []string{"rotate"}},
		{"unparsable DATABASE_URL with a password", []string{"SECRETS_KEY=" + keys.b64,
			"DATABASE_URL=postgres://app:" + s("dbpw") + "@127.0.0.1:notaport/app"},
			"", []string{"get", "k"}},
		{"DATABASE_URL with a bad parameter and a password", []string{"SECRETS_KEY=" + keys.b64,
			"DATABASE_URL=postgres://app:" + s("dbpw") + "@127.0.0.1:1/app?sslmode=bogus"},
			"", []string{"list"}},
		{"key=value DATABASE_URL with a bad port and a password", []string{
			"DATABASE_URL=host=127.0.0.1 port=x password=" + s("dbpw") + " user=app"},
			"", []string{"migrate"}},
	}
	// A normal run tries each bad JSON text and each bad owner with two of
	// the commands that take one, in turn; a soak tries every command.
	per := scale(2, 2)
	for i, j := range badJSON {
		ways := []usage{
			{"bad JSON argument: " + j.name, env, "", []string{"set", "k", j.text}},
			{"bad JSON on stdin: " + j.name, env, j.text, []string{"set", "k"}},
			{"bad JSON on stdin with a scope: " + j.name, env, j.text,
				[]string{"set", "--group", "users", "--owner", "5", "k"}},
		}
		cases = append(cases, cliPick(ways, i, per)...)
	}
	for i, o := range badOwners {
		q := strconv.Quote(o)
		ways := []usage{
			{"set --owner " + q, env, "", []string{"set", "--owner", o, "k", "1"}},
			{"get --owner=" + q, env, "", []string{"get", "--owner=" + o, "k"}},
			{"delete --owner " + q, env, "", []string{"delete", "--owner", o, "k"}},
			{"list --owner " + q, env, "", []string{"list", "--owner", o}},
		}
		cases = append(cases, cliPick(ways, i, per)...)
	}
	c.f.mutations.Add(int64(len(badJSON) + len(badOwners)))

	cliParallel(len(cases), func(i int) {
		u := cases[i]
		c.f.cases.Add(1)
		r := c.expect(u.name, 2, cliCall{env: u.env, stdin: u.stdin}, u.args...)
		if !cliHasLine(r.stderr, "sqlsecrets: hint: ") {
			t.Errorf("%s: exit status 2 without a hint line; stderr:\n%s", u.name,
				cliScrub(r.stderr))
		}
	})

	// With no command at all the overview is the hint.
	c.f.cases.Add(1)
	r := c.run(cliCall{env: env}, false)
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "usage: sqlsecrets") {
		t.Errorf("no command: exit %d, %d bytes on stdout, want 2, none, and the usage on "+
			"stderr:\n%s", r.code, len(r.stdout), cliScrub(r.stderr))
	}

	// Not one of them wrote anything.
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM secrets").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("usage errors wrote %d rows", n)
	}
}

// cliPick returns n of ways, starting at the i-th in turn; all of them on
// a soak.
func cliPick[T any](ways []T, i, n int) []T {
	if *soak || n >= len(ways) {
		return ways
	}
	out := make([]T, n)
	for j := range out {
		out[j] = ways[(i+j)%len(ways)]
	}
	return out
}

// cliScrub returns s with every registered secret replaced by a
// placeholder, so that a failure message can show a command's output even
// when the output leaked one: the leak is reported, not repeated.
func cliScrub(s string) string {
	watch.mu.Lock()
	needles := append([]string(nil), watch.needles...)
	watch.mu.Unlock()
	sort.Slice(needles, func(i, j int) bool { return len(needles[i]) > len(needles[j]) })
	for _, n := range needles {
		s = strings.ReplaceAll(s, n, "<secret>")
	}
	return s
}

// cliHasLine reports whether text has a line that starts with prefix.
func cliHasLine(text, prefix string) bool {
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

// cliParallel calls fn(0..n-1) on a few goroutines and waits.
func cliParallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// cliUnreadable: a wrong key, tampered rows and missing secrets. get
// exits 1 (3 when missing) and prints nothing on stdout; verify and rotate
// exit 1 over bad rows, list them, and leave them as they are.
func cliUnreadable(c cliT) {
	t := c.t
	url, pool := pgtest.Migrated(t)
	keys := newCLIKeys(t)
	env := func(key, previous string) cliCall {
		vars := []string{"DATABASE_URL=" + url, "SECRETS_KEY=" + key}
		if previous != "" {
			vars = append(vars, "SECRETS_PREVIOUS_KEYS="+previous)
		}
		return cliCall{env: vars}
	}
	a := env(keys.b64, "")

	// One global string secret per mutation, the same key under owner 42
	// of group users, and one more row, all under keys.b64.
	n := len(cliMutations(strings.Repeat("v1.x", 20), "", "", "", make([]byte, 32)))
	plain := make([]string, n)
	var entries []secrets.Entry
	for i := range plain {
		plain[i] = fltTag("cli-tok")
		key := fmt.Sprintf("tok%02d", i)
		entries = append(entries,
			secrets.Entry{Name: secrets.Name{Group: "global", Key: key}, Value: plain[i]},
			secrets.Entry{Name: secrets.Name{Group: "users", Owner: cliOwner(42), Key: key},
				Value: map[string]string{"token": fltTag("cli-user")}})
	}
	entries = append(entries, secrets.Entry{Name: secrets.Name{Group: "global", Key: "other"},
		Value: fltTag("cli-other")})
	fltSeed(c.t, c.f, pool, fltRing(t, keys.b64), cliRecords(entries))
	stored := func(key string, owner string) string {
		t.Helper()
		var v string
		err := pool.QueryRow(t.Context(), `SELECT value FROM secrets WHERE key = $1
			AND coalesce(owner_id::text, '-') = $2`, key, owner).Scan(&v)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// intact checks, through the library, that every tokNN row still
	// holds its value; one of them is read with the binary too.
	intact := func(what string, call cliCall, ring *secrets.Keyring) {
		t.Helper()
		for i := range plain {
			c.f.operations.Add(1)
			got, err := secrets.GetAs[string](t.Context(), secrets.New(ring), pool,
				fmt.Sprintf("tok%02d", i))
			if err != nil || got != plain[i] {
				c.f.lose(t, 1, fmt.Sprintf("%s: tok%02d no longer reads back", what, i))
			}
		}
		r := c.run(call, true, "get", "--string", "tok00")
		if r.code != 0 || r.stdout != plain[0]+"\n" {
			c.f.lose(t, 1, fmt.Sprintf("%s: get tok00 exits %d and prints %d bytes, "+
				"not the value", what, r.code, len(r.stdout)))
		}
	}

	// A wrong key: nothing printed, exit 1; a rotation fails and keeps the rows.
	c.f.cases.Add(5)
	c.expect("get with a wrong key", 1, env(keys.hex, ""), "get", "tok00")
	c.expect("get --string with a wrong key", 1, env(keys.hex, ""), "get", "--string", "tok00")
	c.expect("get with wrong keys only", 1, env(keys.hex, keys.raw), "get", "--group", "users",
		"--owner", "42", "tok00")
	c.expect("verify with a wrong key", 1, env(keys.hex, ""), "verify")
	c.expect("rotate with a wrong key", 1, env(keys.hex, keys.raw), "rotate", "--json")
	intact("after rotate with a wrong key", a, fltRing(t, keys.b64))

	// Tamper with every tokNN row, each its own way.
	origs := make([]string, n)
	names := make([]string, n)
	tampered := make([]string, n)
	for i := range origs {
		key := fmt.Sprintf("tok%02d", i)
		origs[i] = stored(key, "-")
		m := cliMutations(origs[i], stored("other", "-"), stored(key, "42"), plain[i],
			keys.rawA)[i]
		names[i], tampered[i] = m.name, m.value
		if _, err := pool.Exec(t.Context(), `UPDATE secrets SET value = $1
			WHERE key = $2 AND owner_id IS NULL`, m.value, key); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	c.f.cases.Add(int64(n))
	c.f.mutations.Add(int64(n))
	cliParallel(n, func(i int) {
		key := fmt.Sprintf("tok%02d", i)
		c.expect(names[i]+": get", 1, a, "get", key)
		c.expect(names[i]+": get --string", 1, a, "get", "--string", key)
	})
	r := c.expect("verify --json over tampered rows", 1, a, "verify", "--json")
	want := fmt.Sprintf(`"total":%d,"current":%d,"previous":0,"unreadable":%d,`,
		2*n+1, n+1, n)
	if !strings.Contains(r.stdout, want) || strings.Count(r.stdout, `"key":"tok`) != n {
		t.Errorf("verify --json does not count and list the %d tampered rows: %q",
			n, cliScrub(r.stdout))
	}
	r = c.expect("rotate over tampered rows", 1, env(keys.hex, keys.b64), "rotate", "--json")
	want = fmt.Sprintf(`{"rotated":%d,"skipped":0,"failed":%d,`, n+1, n)
	if !strings.HasPrefix(r.stdout, want) {
		t.Errorf("rotate --json over tampered rows: %q, want it to start %q",
			cliScrub(r.stdout), want)
	}
	for i := range origs {
		key := fmt.Sprintf("tok%02d", i)
		if stored(key, "-") != tampered[i] {
			t.Errorf("%s: rotate changed a row it could not open", names[i])
		}
		if _, err := pool.Exec(t.Context(), `UPDATE secrets SET value = $1
			WHERE key = $2 AND owner_id IS NULL`, origs[i], key); err != nil {
			t.Fatal(err)
		}
	}
	// Restored, they read again; the other rows are now under keys.hex.
	a = env(keys.b64, keys.hex)
	intact("restored", a, fltRing(t, keys.b64, keys.hex))

	// Missing secrets, including ones that exist in a neighbouring scope.
	for _, m := range []struct {
		name string
		args []string
	}{
		{"get a missing key", []string{"get", "missing"}},
		{"get tok00 of owner 7", []string{"get", "--owner", "7", "tok00"}},
		{"get tok00 of group users, no owner", []string{"get", "--group", "users", "tok00"}},
		{"get tok00 of owner 42, group global", []string{"get", "--owner", "42", "tok00"}},
		{"get --string of a missing key", []string{"get", "--string", "missing"}},
		{"delete a missing key", []string{"delete", "missing"}},
		{"delete tok00 of group users, no owner", []string{"delete", "--group", "users", "tok00"}},
	} {
		c.f.cases.Add(1)
		c.expect(m.name, 3, a, m.args...)
	}
	intact("after the missing ones", a, fltRing(t, keys.b64, keys.hex))
}

// cliOwner returns a pointer to id.
func cliOwner(id int64) *int64 { return &id }

// cliRecords turns entries into records for fltSeed.
func cliRecords(entries []secrets.Entry) []fltRecord {
	recs := make([]fltRecord, len(entries))
	for i, e := range entries {
		b, err := json.Marshal(e.Value)
		if err != nil {
			panic(err)
		}
		recs[i] = fltRecord{name: e.Name, json: string(b)}
	}
	return recs
}

// cliMutation is one altered stored value.
type cliMutation struct{ name, value string }

// cliMutations returns ways to alter orig, the stored value of a string
// secret whose text is plain: bit flips, cuts, other rows' values, other
// versions, the plaintext itself, a legacy envelope with the key's own
// fingerprint and garbage after it.
func cliMutations(orig, other, sameKeyOtherOwner, plain string, rawKey []byte) []cliMutation {
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	sum := sha256.Sum256(rawKey)
	legacy := base64.StdEncoding.EncodeToString(append(append([]byte(hex.EncodeToString(sum[:])),
		bytes.Repeat([]byte{7}, 16)...), base64.StdEncoding.EncodeToString(
		bytes.Repeat([]byte{9}, 32))...))
	body := orig[len("v1."):]
	return []cliMutation{
		{"a middle character flipped", flip(orig, len(orig)/2)},
		{"the last character flipped", flip(orig, len(orig)-1)},
		{"the first character of the body flipped", flip(orig, len("v1."))},
		{"the key id flipped", flip(orig, len("v1.")+3)},
		{"cut by one character", orig[:len(orig)-1]},
		{"cut by a tag's worth", orig[:len(orig)-43]},
		{"cut to half", orig[:len(orig)/2]},
		{"empty", ""},
		{"the prefix alone", "v1."},
		{"another version", "v2." + body},
		{"no prefix", body},
		{"another row's value", other},
		{"the same key's value of another owner", sameKeyOtherOwner},
		{"the plaintext JSON", strconv.Quote(plain)},
		{"the plaintext", plain},
		{"a legacy envelope with the key's fingerprint and garbage", legacy},
		{"upper case", strings.ToUpper(orig)},
		{"a trailing newline", orig + "\n"},
		{"padding added", orig + "=="},
		{"the body doubled", orig + body},
		// Its first body character is a '+' as well, so that the case changes
		// the value even when the body happens to hold no '-' or '_'.
		{"standard base64 characters", func() string {
			r := strings.NewReplacer("-", "+", "_", "/").Replace(orig)
			return r[:3] + "+" + r[4:]
		}()},
		{"a megabyte of base64", "v1." + strings.Repeat("QUFB", 1<<18)},
		{"two characters replaced by spaces", orig[:10] + " " + orig[11:20] + " " + orig[21:]},
	}
}

// cliDatabaseErrors: a dropped table and an unreachable or refusing
// server. Each command fails with exit status 1 and a hint, prints
// nothing on stdout, and shows neither the value it was given nor the
// password of DATABASE_URL.
func cliDatabaseErrors(c cliT) {
	t := c.t
	dbURL, pool := pgtest.Migrated(t)
	keys := newCLIKeys(t)
	env := []string{"DATABASE_URL=" + dbURL, "SECRETS_KEY=" + keys.b64}
	c.expect("set before the drop", 0, cliCall{env: env}, "set", "k", `"`+fltTag("cli-pre")+`"`)
	if _, err := pool.Exec(t.Context(), "DROP TABLE secrets"); err != nil {
		t.Fatal(err)
	}
	c.f.mutations.Add(1)

	importFile := filepath.Join(t.TempDir(), "in.jsonl")
	line := `{"group": "users", "owner": 3, "key": "imp", "value": "` + fltTag("cli-imp") + "\"}\n"
	if err := os.WriteFile(importFile, []byte(line+line), 0o600); err != nil {
		t.Fatal(err)
	}
	val := fltTag("cli-droptable")
	commands := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"set", "", []string{"set", "k", `{"token": "` + val + `"}`}},
		{"set from stdin", val + "\n", []string{"set", "--string", "--owner", "9", "k"}},
		{"get", "", []string{"get", "k"}},
		{"delete", "", []string{"delete", "k"}},
		{"list", "", []string{"list"}},
		{"list --all --json", "", []string{"list", "--all", "--json"}},
		{"import", "", []string{"import", importFile}},
		{"import from stdin", line, []string{"import", "-"}},
		{"rotate", "", []string{"rotate"}},
		{"verify", "", []string{"verify", "--json"}},
	}
	for _, cmd := range commands {
		c.f.cases.Add(1)
		name := "table dropped: " + cmd.name
		r := c.expect(name, 1, cliCall{env: env, stdin: cmd.stdin}, cmd.args...)
		if !strings.Contains(r.stderr, "sqlsecrets: hint: ") ||
			!strings.Contains(r.stderr, "migrate") {
			t.Errorf("%s: no hint to run migrate:\n%s", name, cliScrub(r.stderr))
		}
	}

	// An unreachable server, reached with a password in every place a
	// connection string can hold one.
	closed := cliClosedPort(t)
	closed2 := cliClosedPort(t)
	pw := fltTag("cli-dbpw")
	pwSpecial := secretValue(pw + "@:/?#%&")
	pwEscaped := secretValue(url.QueryEscape(pwSpecial))
	special := url.URL{Scheme: "postgresql", User: url.UserPassword("app", pwSpecial),
		Host: fmt.Sprintf("127.0.0.1:%d", closed), Path: "/app", RawQuery: "sslmode=disable"}
	secretValue(strings.TrimPrefix(special.User.String(), "app:"))
	urls := []struct{ name, url string }{
		{"password in the user info", fmt.Sprintf(
			"postgres://app:%s@127.0.0.1:%d/app?sslmode=disable", pw, closed)},
		{"escaped password in the user info", special.String()},
		{"password parameter", fmt.Sprintf(
			"postgres://app@127.0.0.1:%d/app?password=%s&sslmode=disable", closed, pwEscaped)},
		{"sslpassword parameter", fmt.Sprintf(
			"postgres://app@127.0.0.1:%d/app?sslpassword=%s&sslmode=disable", closed, pw)},
		{"two hosts", fmt.Sprintf("postgres://app:%s@127.0.0.1:%d,127.0.0.1:%d/app?"+
			"sslmode=disable&connect_timeout=5", pw, closed, closed2)},
		{"key=value", fmt.Sprintf(
			"host=127.0.0.1 port=%d user=app password=%s dbname=app sslmode=disable", closed, pw)},
		{"key=value, quoted password", fmt.Sprintf(
			"host=127.0.0.1 port=%d user=app password='%s x' dbname=app", closed, pw)},
		{"refused TLS, on the local server", fmt.Sprintf(
			"postgres://reliability_no_such_role:%s@127.0.0.1:5432/postgres?sslmode=require", pw)},
		{"unknown role, on the local server", fmt.Sprintf(
			"postgres://reliability_no_such_role:%s@127.0.0.1:5432/postgres?sslmode=disable", pw)},
		{"unknown database, on the local server", fmt.Sprintf(
			"postgres://postgres:%s@127.0.0.1:5432/reliability_no_such_db?sslmode=disable", pw)},
	}
	unreachable := [][]string{
		{"set", "k", `"` + val + `"`}, {"get", "k"}, {"delete", "k"}, {"list"},
		{"migrate"}, {"migrate", "status"}, {"rotate"}, {"verify"}, {"import", importFile},
	}
	for k, u := range urls {
		// Every command with every URL on a soak; three each in turn
		// otherwise, which still covers every command.
		cmds := cliPick(unreachable, 3*k, 3)
		cliParallel(len(cmds), func(i int) {
			args := cmds[i]
			c.f.cases.Add(1)
			name := u.name + ": " + args[0]
			call := cliCall{env: []string{"DATABASE_URL=" + u.url, "SECRETS_KEY=" + keys.b64}}
			r := c.expect(name, 1, call, args...)
			if !cliHasLine(r.stderr, "sqlsecrets: hint: ") {
				t.Errorf("%s: no hint line:\n%s", name, cliScrub(r.stderr))
			}
		})
	}
}

// cliBadImports: import files with a bad line after a good batch. The
// import exits 1 naming the line, keeps the batches before it and nothing
// of the bad line's batch, never quotes the line, and never turns a bad
// owner into another scope (the SQL uses -1 for "no owner").
func cliBadImports(c cliT) {
	t := c.t
	url, pool := pgtest.Migrated(t)
	keys := newCLIKeys(t)
	call := cliCall{env: []string{"DATABASE_URL=" + url, "SECRETS_KEY=" + keys.b64}}
	v := fltTag("cli-badimport")
	good := `{"key": "good1", "value": 1}` + "\n" + `{"key": "good2", "value": 2}` + "\n"
	bad := []struct{ name, line string }{
		{"owner -1", `{"owner": -1, "key": "neg", "value": "` + v + `"}`},
		{"owner as a string", `{"owner": "5", "key": "neg", "value": "` + v + `"}`},
		{"owner 1.0", `{"owner": 1.0, "key": "neg", "value": "` + v + `"}`},
		{"owner 1e2", `{"owner": 1e2, "key": "neg", "value": "` + v + `"}`},
		{"owner too large", `{"owner": 99999999999999999999, "key": "neg", "value": "` + v + `"}`},
		{"owner true", `{"owner": true, "key": "neg", "value": "` + v + `"}`},
		{"no key", `{"value": "` + v + `"}`},
		{"no value", `{"key": "neg"}`},
		{"an unknown field", `{"key": "neg", "value": 1, "secret": "` + v + `"}`},
		{"a cut line", `{"key": "neg", "value": "` + v},
		{"an array", `["neg", "` + v + `"]`},
		{"an empty key", `{"key": "", "value": "` + v + `"}`},
		{"a key of 151 characters", `{"key": "` + strings.Repeat("k", 151) + `", "value": 1}`},
		{"an empty group", `{"group": "", "key": "neg", "value": "` + v + `"}`},
		{"a value not UTF-8", `{"key": "neg", "value": "` + v + "\xff" + `"}`},
		{"two objects", `{"key": "neg", "value": 1} {"key": "neg2", "value": "` + v + `"}`},
	}
	dir := t.TempDir()
	for i, b := range bad {
		c.f.cases.Add(1)
		c.f.mutations.Add(1)
		if _, err := pool.Exec(t.Context(), "TRUNCATE secrets"); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, fmt.Sprintf("bad%d.jsonl", i))
		input := good + b.line + "\n" + `{"key": "after", "value": 3}` + "\n"
		if err := os.WriteFile(file, []byte(input), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range cliPick([][]string{
			{"import", "--batch", "2", file},
			{"import", "--batch", "2", "-"},
		}, i, 1) {
			call := call
			if args[3] == "-" {
				call.stdin = input
			}
			name := b.name + " in " + args[3][max(0, len(args[3])-10):]
			r := c.expect(name, 1, call, args...)
			if !strings.Contains(r.stderr, "line 3") {
				t.Errorf("%s: the error does not name line 3:\n%s", name, cliScrub(r.stderr))
			}
			keys := fltStrings(t, pool, `SELECT key || '/' || coalesce(owner_id::text, '-')
				FROM secrets ORDER BY key`)
			if want := []string{"good1/-", "good2/-"}; strings.Join(keys, " ") !=
				strings.Join(want, " ") {
				t.Errorf("%s: the table holds %q, want the first batch only, %q",
					name, keys, want)
			}
		}
	}
}

// cliClosedPort returns a port of 127.0.0.1 that nothing listens on.
func cliClosedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// cliOrdinaryUse: the commands doing their job, with values that are
// secrets, so that the leak watch sees every output but get's and
// keygen's, and get prints exactly what was set.
func cliOrdinaryUse(c cliT) {
	t := c.t
	url, pool := pgtest.Migrated(t)
	keys := newCLIKeys(t)
	env := []string{"DATABASE_URL=" + url, "SECRETS_KEY=" + keys.b64}
	call := cliCall{env: env}

	// keygen's output is a key: register it, and use it.
	r := c.run(cliCall{}, true, "keygen")
	gen := strings.TrimSuffix(r.stdout, "\n")
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(gen, "base64:"))
	if r.code != 0 || !strings.HasPrefix(gen, "base64:") || err != nil || len(raw) != 32 {
		t.Fatalf("keygen: exit %d, output of %d bytes is not a base64: key", r.code, len(gen))
	}
	secretKey(gen, raw)

	pem := "-----BEGIN PRIVATE KEY-----\n" + fltTag("cli-pem") + "\n-----END PRIVATE KEY-----"
	values := []struct {
		name, owner, key, stdin, arg, want string
		asString                           bool
	}{
		{name: "string from stdin", key: "s", stdin: fltTag("cli-s") + "\n", asString: true},
		{name: "PEM from stdin", owner: "0", key: "pem", stdin: pem + "\n", asString: true},
		{name: "object argument", owner: "42", key: "o",
			arg: `{"token":"` + fltTag("cli-o") + `","n":12345678901234567890}`},
		{name: "array from stdin", owner: "9223372036854775807", key: "a",
			stdin: `["` + fltTag("cli-a") + `",null,false,3.25,-1]`},
	}
	for _, v := range values {
		c.f.cases.Add(1)
		args := []string{"set"}
		getArgs := []string{"get"}
		if v.owner != "" {
			args = append(args, "--owner", v.owner)
			getArgs = append(getArgs, "--owner", v.owner)
		}
		if v.asString {
			args = append(args, "--string")
			getArgs = append(getArgs, "--string")
		}
		args = append(args, v.key)
		getArgs = append(getArgs, v.key)
		want := v.arg + "\n"
		if v.arg != "" {
			args = append(args, v.arg)
		} else {
			want = v.stdin
			if !v.asString {
				want += "\n"
			}
		}
		c.expect("set "+v.name, 0, cliCall{env: env, stdin: v.stdin}, args...)
		g := c.run(call, true, getArgs...)
		if g.code != 0 || g.stdout != want {
			c.f.lose(t, 1, fmt.Sprintf("get %s: exit %d, %d bytes, want the %d set",
				v.name, g.code, len(g.stdout), len(want)))
		}
	}
	c.expect("list", 0, call, "list", "--all")
	c.expect("list --json", 0, call, "list", "--all", "--json")

	f := filepath.Join(t.TempDir(), "in.jsonl")
	var b strings.Builder
	for i := range 30 {
		fmt.Fprintf(&b, `{"group": "imp", "owner": %d, "key": "k%d", "value": "%s-%d"}`+"\n",
			i%3, i, fltTag("cli-import"), i)
	}
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	c.f.cases.Add(1)
	if r := c.expect("import", 0, call, "import", "--batch", "7", f); r.stdout !=
		"imported 30 secrets\n" {
		t.Errorf("import: stdout %q", cliScrub(r.stdout))
	}

	rotating := cliCall{env: []string{"DATABASE_URL=" + url, "SECRETS_KEY=" + gen,
		"SECRETS_PREVIOUS_KEYS=" + keys.b64}}
	c.f.cases.Add(1)
	if r := c.expect("rotate", 0, rotating, "rotate", "--json", "--batch", "4"); r.stdout !=
		`{"rotated":34,"skipped":0,"failed":0,"failures":[]}`+"\n" {
		t.Errorf("rotate --json: %q", cliScrub(r.stdout))
	}
	onlyNew := cliCall{env: []string{"DATABASE_URL=" + url, "SECRETS_KEY=" + gen}}
	if r := c.expect("verify", 0, onlyNew, "verify", "--json"); r.stdout !=
		`{"total":34,"current":34,"previous":0,"unreadable":0,"legacy":0,"failures":[]}`+"\n" {
		t.Errorf("verify --json: %q", cliScrub(r.stdout))
	}
	g := c.run(onlyNew, true, "get", "--owner", "42", "o")
	if g.code != 0 || g.stdout != values[2].arg+"\n" {
		c.f.lose(t, 1, "get after the rotation does not return the value set")
	}
	c.f.cases.Add(1)
	c.expect("get --string of an object", 1, onlyNew, "get", "--string", "--owner", "42", "o")
	c.expect("delete", 0, onlyNew, "delete", "--owner", "42", "o")
	c.expect("get deleted", 3, onlyNew, "get", "--owner", "42", "o")
	for _, cmd := range [][]string{{"help"}, {"get", "--help"}, {"migrate", "status"}} {
		c.expect(strings.Join(cmd, " "), 0, call, cmd...)
	}
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM secrets").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 33 {
		t.Errorf("the table holds %d rows, want 33", n)
	}
}
