package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// keys returns the keys of every secret, in the order of list --all.
func keys(t *testing.T, e env) []string {
	t.Helper()
	r := must(t, 0, e, "", "list", "--all", "--json")
	var rows []struct{ Key string }
	if err := json.Unmarshal([]byte(r.Stdout), &rows); err != nil {
		t.Fatalf("list --all --json: %v", err)
	}
	out := []string{}
	for _, row := range rows {
		out = append(out, row.Key)
	}
	return out
}

func writeFile(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secrets.jsonl")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImport(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	file := writeFile(t,
		`{"key": "a", "value": 12345678901234567890}`,
		``,
		`{"group": "users", "owner": 42, "key": "b", "value": {"x": [1, "two"]}}`,
		`{"group": "users", "owner": null, "key": "c", "value": null}`,
	)
	r := must(t, 0, e, "", "import", file)
	if r.Stdout != "imported 3 secrets\n" {
		t.Errorf("import: stdout %q, want %q", r.Stdout, "imported 3 secrets\n")
	}
	if !strings.Contains(r.Stderr, "sqlsecrets: import: 3 secrets written") {
		t.Errorf("import: no progress line on stderr:\n%s", scrub(r.Stderr))
	}
	checks := []struct {
		args []string
		want string
	}{
		{[]string{"get", "a"}, "12345678901234567890\n"},
		{[]string{"get", "--group", "users", "--owner", "42", "b"}, `{"x":[1,"two"]}` + "\n"},
		{[]string{"get", "--group", "users", "c"}, "null\n"},
	}
	for _, c := range checks {
		r := must(t, 0, e, "", c.args...)
		sameValue(t, strings.Join(c.args, " "), r.Stdout, c.want)
	}

	// From standard input, overwriting.
	r = must(t, 0, e, `{"key": "a", "value": "new"}`+"\n", "import", "-")
	if r.Stdout != "imported 1 secret\n" {
		t.Errorf("import -: stdout %q", r.Stdout)
	}
	r = must(t, 0, e, "", "get", "a")
	sameValue(t, "get a after import -", r.Stdout, "\"new\"\n")

	r = must(t, 1, e, "", "import", filepath.Join(t.TempDir(), "missing.jsonl"))
	if !strings.Contains(r.Stderr, "no such file") {
		t.Errorf("import of a missing file:\n%s", scrub(r.Stderr))
	}
}

func TestImportBadLine(t *testing.T) {
	t.Parallel()
	lines := []string{
		`{"key": "l1", "value": 1}`,
		`{"key": "l2", "value": 2}`,
		`{"key": "l3", "value": 3}`,
		`{"key": "l4", "value": 4, "extra": true}`,
		`{"key": "l5", "value": 5}`,
	}
	tests := []struct {
		name  string
		batch string
		want  []string // the keys written
	}{
		{"one batch", "500", []string{}},
		{"batches of 2", "2", []string{"l1", "l2"}}, // l3 shares the bad line's batch
		{"batches of 3", "3", []string{"l1", "l2", "l3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, _ := db(t)
			r := must(t, 1, e, "", "import", "--batch", tt.batch, writeFile(t, lines...))
			if r.Stdout != "" {
				t.Errorf("failed import: stdout %q, want nothing", r.Stdout)
			}
			if !strings.Contains(r.Stderr, "sqlsecrets: error: import: line 4: ") {
				t.Errorf("failed import: stderr does not name line 4:\n%s", scrub(r.Stderr))
			}
			checkMessages(t, "import", r.Stderr)
			if diff := cmp.Diff(tt.want, keys(t, e)); diff != "" {
				t.Errorf("secrets written (-want +got):\n%s", diff)
			}
		})
	}
}
