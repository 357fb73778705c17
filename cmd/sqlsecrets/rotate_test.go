package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5/pgxpool"
)

// rowID returns the id of the row of key.
func rowID(t *testing.T, pool *pgxpool.Pool, key string) int64 {
	t.Helper()
	var id int64
	err := pool.QueryRow(context.Background(), `SELECT id FROM secrets WHERE key = $1`, key).Scan(&id)
	if err != nil {
		t.Fatalf("id of %q: %v", key, err)
	}
	return id
}

func TestRotate(t *testing.T) {
	t.Parallel()
	e, pool := db(t) // SECRETS_KEY is keyOld
	must(t, 0, e, "", "set", "a", "1")
	must(t, 0, e, "", "set", "--group", "users", "--owner", "42", "b", `"two"`)
	must(t, 0, e, "", "set", "c", "null")
	must(t, 0, e.with(keyOther, ""), "", "set", "--group", "users", "lost", `"x"`)
	lost := rowID(t, pool, "lost")

	rotating := e.with(keyNew, keyOld)
	r := must(t, 1, rotating, "", "rotate", "--json")
	want := fmt.Sprintf(`{"rotated":3,"skipped":0,"failed":1,"failures":[{"id":%d,"group":"users",`+
		`"owner":null,"key":"lost","error":"sealed with a key that is not in the keyring"}]}`+"\n", lost)
	if diff := cmp.Diff(want, r.Stdout); diff != "" {
		t.Errorf("rotate --json (-want +got):\n%s", diff)
	}
	if !strings.Contains(r.Stderr, "sqlsecrets: rotate: 4/4 rows (100%), rotated 3, skipped 0, failed 1\n") ||
		!strings.Contains(r.Stderr, "sqlsecrets: error: 1 row could not be rotated") {
		t.Errorf("rotate: stderr lacks the progress line or the error:\n%s", scrub(r.Stderr))
	}
	checkMessages(t, "rotate", r.Stderr)

	// The new key alone reads what was rotated; verify counts the lost row.
	newOnly := e.with(keyNew, "")
	r = must(t, 0, newOnly, "", "get", "--group", "users", "--owner", "42", "b")
	sameValue(t, "get after rotate", r.Stdout, "\"two\"\n")
	r = must(t, 1, newOnly, "", "verify", "--json")
	want = fmt.Sprintf(`{"total":4,"current":3,"previous":0,"unreadable":1,"legacy":0,"failures":[{"id":%d,`+
		`"group":"users","owner":null,"key":"lost","error":"sealed with a key that is not in the keyring"}]}`+
		"\n", lost)
	if diff := cmp.Diff(want, r.Stdout); diff != "" {
		t.Errorf("verify --json (-want +got):\n%s", diff)
	}

	// Once the lost row is gone, a second run skips everything and succeeds.
	must(t, 0, e.with(keyOther, ""), "", "delete", "--group", "users", "lost")
	r = must(t, 0, rotating, "", "rotate", "--json")
	if diff := cmp.Diff(`{"rotated":0,"skipped":3,"failed":0,"failures":[]}`+"\n", r.Stdout); diff != "" {
		t.Errorf("second rotate --json (-want +got):\n%s", diff)
	}
	r = must(t, 0, newOnly, "", "verify")
	wantText := "total:      3\ncurrent:    3 (under SECRETS_KEY)\n" +
		"previous:   0 (under SECRETS_PREVIOUS_KEYS, or legacy)\nunreadable: 0\n" +
		"legacy:     0 (of the previous, in the PHP original's format)\n"
	if diff := cmp.Diff(wantText, r.Stdout); diff != "" {
		t.Errorf("verify (-want +got):\n%s", diff)
	}
}

func TestRotateText(t *testing.T) {
	t.Parallel()
	e, pool := db(t)
	must(t, 0, e, "", "set", "a", "1")
	must(t, 0, e, "", "set", "b", "2")
	must(t, 0, e.with(keyOther, ""), "", "set", "lost", "3")
	lost := rowID(t, pool, "lost")

	// A dry run counts and writes nothing.
	r := must(t, 1, e.with(keyNew, keyOld), "", "rotate", "--dry-run")
	want := fmt.Sprintf("would rotate: 2\nskipped:      0 (already under SECRETS_KEY)\n"+
		"failed:       1\n  id %d: global \"lost\": sealed with a key that is not in the keyring\n", lost)
	if diff := cmp.Diff(want, r.Stdout); diff != "" {
		t.Errorf("rotate --dry-run (-want +got):\n%s", diff)
	}
	r = must(t, 1, e.with(keyNew, keyOld), "", "verify", "--json")
	var rep struct{ Current, Previous, Unreadable int }
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Current != 0 || rep.Previous != 2 || rep.Unreadable != 1 {
		t.Errorf("after a dry run: verify says %+v, want 0 current, 2 previous, 1 unreadable", rep)
	}

	must(t, 0, e.with(keyOther, ""), "", "delete", "lost")
	r = must(t, 0, e.with(keyNew, keyOld), "", "rotate", "--batch", "1")
	want = "rotated:      2\nskipped:      0 (already under SECRETS_KEY)\nfailed:       0\n"
	if diff := cmp.Diff(want, r.Stdout); diff != "" {
		t.Errorf("rotate (-want +got):\n%s", diff)
	}
}

// TestRotateInterrupt stops a slow rotation with SIGINT and checks that it
// stops cleanly, says how far it got, and that a second run finishes the
// job.
func TestRotateInterrupt(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	const n = 2000
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, `{"key": "k%d", "value": %d}`+"\n", i, i)
	}
	must(t, 0, e, in.String(), "import", "--batch", "1000", "-")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "rotate", "--batch", "1", "--json")
	cmd.Env = e.with(keyNew, keyOld).list()
	var stdout strings.Builder
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt after the first progress line, that is after the first batch.
	sc := bufio.NewScanner(stderr)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) == 1 {
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("interrupted rotate: %v, want exit status 1; stderr:\n%s", err,
			scrub(strings.Join(lines, "\n")))
	}
	text := strings.Join(lines, "\n")
	if !strings.Contains(text, "sqlsecrets: error: rotation interrupted: stopped after ") ||
		!strings.Contains(text, "run again to continue") {
		t.Errorf("interrupted rotate: stderr does not say how far it got:\n%s", scrub(text))
	}

	var first struct{ Rotated, Skipped, Failed int }
	if err := json.Unmarshal([]byte(stdout.String()), &first); err != nil {
		t.Fatalf("interrupted rotate --json: %v", err)
	}
	if first.Rotated < 1 || first.Rotated >= n || first.Failed != 0 {
		t.Fatalf("interrupted rotate: %+v, want between 1 and %d rotated and none failed", first, n-1)
	}

	r := must(t, 0, e.with(keyNew, keyOld), "", "rotate", "--json")
	var second struct{ Rotated, Skipped, Failed int }
	if err := json.Unmarshal([]byte(r.Stdout), &second); err != nil {
		t.Fatal(err)
	}
	if second.Rotated != n-first.Rotated || second.Skipped != first.Rotated {
		t.Errorf("second rotate: %+v after %+v; want the rest rotated and the first part skipped",
			second, first)
	}
}

// TestNamesPrintDistinct checks that names that a terminal shows alike
// print differently in list's table and in rotate's and verify's failure
// lines, in printable ASCII, while JSON keeps them exact.
func TestNamesPrintDistinct(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	names := []string{"caf\u00e9", "cafe\u0301", "\u00c5", "\u212b", "key", "key\u200b"}
	for _, n := range names {
		must(t, 0, e.with(keyOther, ""), "", "set", "--group", n, n, "1")
	}

	distinct := func(what string, lines []string) {
		t.Helper()
		seen := map[string]bool{}
		for _, l := range lines {
			if seen[l] {
				t.Errorf("%s: two names print as %q", what, l)
			}
			seen[l] = true
			if strings.IndexFunc(l, func(r rune) bool { return r < ' ' || r > '~' }) >= 0 {
				t.Errorf("%s: %+q holds a character outside printable ASCII", what, l)
			}
		}
		if len(lines) != len(names) {
			t.Errorf("%s: %d lines, want %d", what, len(lines), len(names))
		}
	}

	r := must(t, 0, e, "", "list", "--all")
	var rows []string
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n")[1:] {
		f := strings.Fields(line)
		rows = append(rows, f[0]+" "+f[2])
	}
	distinct("list", rows)

	for _, args := range [][]string{{"rotate"}, {"verify"}} {
		r = must(t, 1, e.with(keyNew, keyOld), "", args...)
		var fails []string
		for _, line := range strings.Split(r.Stdout, "\n") {
			if strings.HasPrefix(line, "  id ") {
				_, rest, _ := strings.Cut(line, ": ")
				fails = append(fails, rest)
			}
		}
		distinct(args[0], fails)
	}

	r = must(t, 0, e, "", "list", "--all", "--json")
	var entries []listEntry
	if err := json.Unmarshal([]byte(r.Stdout), &entries); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, en := range entries {
		got = append(got, en.Key)
	}
	if diff := cmp.Diff(names, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("list --json keys (-want +got):\n%s", diff)
	}
}

// Two rotate processes with --workers share the table: each rotates what
// it claimed, and together every row once.
func TestRotateWorkersInTwoProcesses(t *testing.T) {
	t.Parallel()
	e, pool := db(t)
	var lines strings.Builder
	for i := range 300 {
		fmt.Fprintf(&lines, `{"group":"g","owner":%d,"key":"k","value":%d}`+"\n", i, i)
	}
	must(t, 0, e, lines.String(), "import", "-")
	// Spread the ids over many chunks of 10,000.
	if _, err := pool.Exec(context.Background(), "UPDATE secrets SET id = id * 997"); err != nil {
		t.Fatal(err)
	}

	rotating := e.with(keyNew, keyOld)
	results := make(chan result, 2)
	for range 2 {
		go func() {
			results <- run(t, rotating, "", "rotate", "--workers", "2", "--batch", "5", "--json")
		}()
	}
	var rotated int
	for range 2 {
		r := <-results
		var got struct{ Rotated, Failed int }
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &got) != nil || got.Failed != 0 {
			t.Fatalf("rotate --workers 2: exit %d, stderr %s", r.Code, scrub(r.Stderr))
		}
		rotated += got.Rotated
	}
	if rotated != 300 {
		t.Errorf("the two processes rotated %d rows together, want 300", rotated)
	}
	r := must(t, 0, e.with(keyNew, ""), "", "verify", "--workers", "3", "--json")
	if !strings.HasPrefix(r.Stdout, `{"total":300,"current":300,"previous":0,"unreadable":0`) {
		t.Errorf("verify after two rotations: %s", r.Stdout)
	}
}
