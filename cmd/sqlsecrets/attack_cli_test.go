package main

// Attack tests of the command line: usage errors, exit statuses, and any
// value, key or password in output where it should not be. Failures name
// the case and the canary number, never the canary.

import (
	"bytes"
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sqlsecrets/sqlsecrets/schema"
)

func TestAttackCLIValueEchoedInErrors(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	canary := "canaryPEMBODYb64Zx91"
	pem := "-----BEGIN PRIVATE KEY-----\nMIIEv" + canary + "\n-----END PRIVATE KEY-----"
	cases := []struct {
		name string
		args []string
	}{
		{"PEM as --string argument", []string{"set", "--string", "tls_key", pem}},
		{"dash-leading string argument", []string{"set", "--string", "pw", "-" + canary}},
		{"dash-leading JSON argument", []string{"set", "pw", "-" + canary}},
		{"value given where KEY goes", []string{"set", "--string", "-" + canary}},
		{"PEM given where KEY goes", []string{"set", "--string", pem}},
		{"triple dash", []string{"set", "---" + canary, "k"}},
		{"bool flag with a value", []string{"set", "--string=" + canary, "k"}},
		{"--group=value typo", []string{"set", "--group=" + canary + "=x", "k"}},
	}
	for _, tc := range cases {
		r := run(t, e, "", tc.args...)
		if strings.Contains(r.Stderr, canary) || strings.Contains(r.Stdout, canary) {
			first, _, _ := strings.Cut(strings.ReplaceAll(r.Stderr, canary, "<CANARY>"), "\n")
			t.Errorf("%s: exit %d and the value is echoed: %s", tc.name, r.Code, first)
		}
	}
}

func TestAttackCLIUsageStatuses(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"unknown flag", []string{"get", "--nope", "k"}},
		{"missing key", []string{"get"}},
		{"missing key set", []string{"set"}},
		{"bad JSON", []string{"set", "k", "{nope"}},
		{"negative owner", []string{"get", "--owner", "-1", "k"}},
		{"non-numeric owner", []string{"get", "--owner", "abc", "k"}},
		{"owner with plus", []string{"get", "--owner", "+1", "k"}},
		{"owner too large", []string{"get", "--owner", "9223372036854775808", "k"}},
		{"empty group", []string{"get", "--group", "", "k"}},
		{"NUL-free but 151-char key", []string{"get", strings.Repeat("k", 151)}},
		{"invalid UTF-8 key", []string{"get", "a\xffb"}},
		{"empty key", []string{"get", ""}},
		{"batch zero", []string{"rotate", "--batch", "0"}},
		{"batch negative", []string{"verify", "--batch", "-5"}},
		{"unknown command", []string{"frobnicate"}},
		{"list all with group", []string{"list", "--all", "--group", "g"}},
		{"migrate bad action", []string{"migrate", "sideways"}},
	} {
		r := run(t, e, "", tc.args...)
		if r.Code != 2 || !strings.Contains(r.Stderr, "sqlsecrets: hint: ") || r.Stdout != "" {
			t.Errorf("%s: exit %d, stdout %d bytes, stderr %q; want 2 with a hint",
				tc.name, r.Code, len(r.Stdout), scrub(r.Stderr))
		}
	}
}

func TestAttackCLIWrongKeyAndTamper(t *testing.T) {
	t.Parallel()
	e, pool := db(t)
	must(t, 0, e, "", "set", "--string", "s", "canary-wrong-key-4411")
	for _, tc := range []struct {
		name string
		env  env
		args []string
	}{
		{"wrong key", e.with(keyOther, ""), []string{"get", "s"}},
		{"wrong key --string", e.with(keyOther, ""), []string{"get", "--string", "s"}},
	} {
		r := run(t, tc.env, "", tc.args...)
		if r.Code != 1 || r.Stdout != "" {
			t.Errorf("%s: exit %d, %d bytes on stdout; want 1 and nothing", tc.name, r.Code, len(r.Stdout))
		}
	}
	tamper(t, pool, "s")
	r := run(t, e, "", "get", "s")
	if r.Code != 1 || r.Stdout != "" || strings.Contains(r.Stderr, "canary") {
		t.Errorf("tampered: exit %d, %d bytes on stdout", r.Code, len(r.Stdout))
	}
	must(t, 0, e, "", "set", "--string", "--owner", "0", "s", "canary-owner0-4412")
	// Copy owner 0's value into the global row.
	if _, err := pool.Exec(t.Context(), `UPDATE secrets SET value = (SELECT value FROM secrets WHERE owner_id = 0)
		WHERE owner_id IS NULL`); err != nil {
		t.Fatal(err)
	}
	r = run(t, e, "", "get", "s")
	if r.Code != 1 || r.Stdout != "" {
		t.Errorf("owner 0 value in global row: exit %d, %d bytes on stdout", r.Code, len(r.Stdout))
	}
}

// --batch beyond int32 wraps in rotation's LIMIT: verify says all clear.
func TestAttackCLIVerifyHugeBatch(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	must(t, 0, e.with(keyOther, ""), "", "set", "lost", "1")
	must(t, 1, e, "", "verify") // the row under keyOther is unreadable
	r := run(t, e, "", "verify", "--batch", "4294967296")
	if r.Code == 0 {
		t.Errorf("verify --batch 4294967296: exit 0 with stdout %q; an unreadable row was not looked at", r.Stdout)
	}
	r = run(t, e.with(keyNew, keyOld), "", "rotate", "--batch", "4294967296", "--json")
	if r.Code == 0 {
		t.Errorf("rotate --batch 4294967296: exit 0 with %q; no row was looked at", strings.TrimSpace(r.Stdout))
	}
}

func TestAttackCLIImportHugeBatch(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	r := run(t, e, `{"key":"k","value":1}`, "import", "--batch", "1099511627776", "-")
	if r.Code != 2 || strings.Contains(r.Stderr, "goroutine ") {
		first, _, _ := strings.Cut(r.Stderr, "\n")
		t.Errorf("import --batch 1099511627776: exit %d, stderr starts %q; want a usage error", r.Code, first)
	}
}

// DATABASE_URL passwords in error messages.
func TestAttackCLIDatabaseURLRedaction(t *testing.T) {
	t.Parallel()
	const pw = "canaryDbPassw0rd"
	for _, u := range []string{
		"POSTGRES://app:" + pw + "@127.0.0.1:1/db",
		"Postgresql://app:" + pw + "@127.0.0.1:1/db",
		"postgres://app:" + pw + "@127.0.0.1:1/db?sslmode=bogus",
		"host=127.0.0.1 port=1 password=" + pw + " sslmode=bogus",
		"host=127.0.0.1 port=1 password='" + pw + " x' sslmode=bogus",
		"postgres://app@127.0.0.1:1/db?password=" + pw + "&sslmode=bogus",
		"postgres://app@127.0.0.1:1/db?sslmode=bogus&PassWord=" + pw,
	} {
		r := run(t, env{url: u}, "", "list")
		if strings.Contains(r.Stderr+r.Stdout, pw) {
			t.Errorf("DATABASE_URL %q: the password is shown in the error (exit %d)",
				strings.ReplaceAll(u, pw, "<PW>"), r.Code)
		}
	}
}

// migrate down counts the secrets, then takes the migration lock and drops
// the table: a secret written in between is dropped without --force.
func TestAttackCLIMigrateDownRace(t *testing.T) {
	t.Parallel()
	e, pool := db(t)
	ctx := t.Context()
	lock, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, "SELECT pg_advisory_lock($1)", schema.LockID); err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			lock.Exec(ctx, "SELECT pg_advisory_unlock($1)", schema.LockID)
		}
		lock.Release()
	}()

	cmd := exec.Command(binary, "migrate", "down")
	cmd.Env = e.list()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until it has counted (an empty table) and waits for the lock.
	time.Sleep(1500 * time.Millisecond)
	must(t, 0, e, "", "set", "--string", "written-meanwhile", "v")

	lock.Exec(ctx, "SELECT pg_advisory_unlock($1)", schema.LockID)
	released = true
	err = cmd.Wait()
	var exists bool
	pool.QueryRow(ctx, "SELECT to_regclass('secrets') IS NOT NULL").Scan(&exists)
	if err == nil && !exists {
		t.Errorf("migrate down without --force dropped a table holding a secret (stdout %q)",
			strings.TrimSpace(stdout.String()))
	}
}

func TestAttackCLIBadKeyEnv(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	rawNew := string(fakeKey("fake-test-key-new"))
	upperNew := strings.ToUpper(keyNew)
	for _, tc := range []struct {
		name, key, previous, want string
	}{
		{"previous equals current, other encoding", keyNew, keyOld + "," + rawNew, "SECRETS_PREVIOUS_KEYS entry 2"},
		{"previous equals current, upper-case hex", keyNew, upperNew, "SECRETS_PREVIOUS_KEYS entry 1"},
		{"space after comma", keyNew, keyOld + ", " + keyOther, "SECRETS_PREVIOUS_KEYS entry 2"},
		{"trailing comma", keyNew, keyOld + ",", "SECRETS_PREVIOUS_KEYS entry 2"},
		{"current with newline", keyNew + "\n", "", "SECRETS_KEY"},
		{"current with CR", keyOld + "\r", "", "SECRETS_KEY"},
		{"current in quotes", `"` + keyNew + `"`, "", "SECRETS_KEY"},
		{"base64url alphabet", "base64:" +
			base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xef, 0xff}, 11)[:32]),
			"", "SECRETS_KEY"},
		{"base64 without padding", strings.TrimRight(keyOld, "="), "", "SECRETS_KEY"},
	} {
		r := run(t, e.with(tc.key, tc.previous), "", "get", "x")
		if r.Code != 2 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 naming %s", tc.name, r.Code, scrub(r.Stderr), tc.want)
		}
		for i, k := range append(keyTexts, upperNew, strings.TrimRight(keyOld, "=")) {
			if strings.Contains(r.Stderr+r.Stdout, k) {
				t.Errorf("%s: output holds key text #%d", tc.name, i)
			}
		}
	}
}

// Two distinct keys that print alike in list's table, and in rotate's
// failure lines.
func TestAttackCLINamesThatPrintAlike(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	nfc, nfd := "caf\u00e9", "cafe\u0301"
	must(t, 0, e, "", "set", nfc, "1")
	must(t, 0, e, "", "set", nfd, "2")
	r := must(t, 0, e, "", "list")
	var keys []string
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n")[1:] {
		f := strings.Fields(line)
		keys = append(keys, strings.NewReplacer("e\u0301", "\u00e9").Replace(f[2]))
	}
	if len(keys) == 2 && keys[0] == keys[1] {
		t.Errorf("list shows two different keys identically: %+q and %+q both render as the same text", nfc, nfd)
	}
	// Seal both under another key and rotate: failure lines.
	must(t, 0, e.with(keyOther, ""), "", "set", nfc, "1")
	must(t, 0, e.with(keyOther, ""), "", "set", nfd, "2")
	r = run(t, e.with(keyNew, keyOld), "", "rotate")
	var fails []string
	for _, line := range strings.Split(r.Stdout, "\n") {
		if strings.HasPrefix(line, "  id ") {
			_, rest, _ := strings.Cut(line, ": ")
			fails = append(fails, strings.NewReplacer("e\u0301", "\u00e9").Replace(rest))
		}
	}
	if len(fails) == 2 && fails[0] == fails[1] {
		t.Logf("rotate failure lines differ only by id: %+q", fails[0])
	}
}
