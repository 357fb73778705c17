package main

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestNoLeaks runs every command, in success and in failure, with
// distinctive values and keys, and checks that no output holds a value or
// any text of a key, except get's standard output (and keygen's, which
// prints a new key of its own). Failures name the step and the canary,
// never the canary's text.
func TestNoLeaks(t *testing.T) {
	t.Parallel()
	e, pool := db(t)

	canaries := []string{
		"canary-string-arg-31a9",
		"canary-object-stdin-77c2",
		"918273645546372819",
		"canaryPEMbodyb64x",
		"canary-import-value-5d1e",
		"canary-import-badline-0f4b",
		"canary-bad-json-arg-6a0c",
		"canary-bad-json-stdin-e3f8",
		"canary-flag-after-key-91bb",
		"canary-unknown-flag-44de",
		"canary-extra-arg-1-c5a0", "canary-extra-arg-2-c5a1",
		"canary-string-of-object-2b7d",
		"canary-rotated-value-8e0a",
		"canary-dry-run-value-73f1",
	}
	// Keys that are refused: they must not be echoed either.
	shortKey := "base64:" + base64.StdEncoding.EncodeToString([]byte("canary-short-key-9d"))
	badPrevious := "canary-bad-previous-key-entry-z"
	forbidden := append(append(append([]string{}, canaries...), keyTexts...), shortKey, badPrevious,
		"canary-short-key-9d")

	pem := "-----BEGIN PRIVATE KEY-----\n" + canaries[3] + "\n-----END PRIVATE KEY-----\n"
	importFile := writeFile(t,
		`{"key": "imp", "value": "`+canaries[4]+`"}`,
		`{"group": "users", "owner": 3, "key": "imp2", "value": {"p": "`+canaries[4]+`"}}`,
	)
	badImport := writeFile(t,
		`{"key": "ok", "value": 1}`,
		`{"key": "bad", "value": "`+canaries[5]+`", "extra": "`+canaries[5]+`"}`,
	)
	badImport2 := writeFile(t, `{"key": "bad2", "value": "`+canaries[5]+`"`)
	rotating := e.with(keyNew, keyOld)

	type step struct {
		name     string
		env      env
		stdin    string
		args     []string
		valueOut bool // stdout may hold a value: get and keygen
	}
	steps := []step{
		{"set string argument", e, "", []string{"set", "--string", "s", canaries[0]}, false},
		{"set JSON stdin", e, `{"password": "` + canaries[1] + `"}`,
			[]string{"set", "--group", "users", "--owner", "3", "o"}, false},
		{"set number", e, "", []string{"set", "n", canaries[2]}, false},
		{"set PEM", e, pem, []string{"set", "--string", "pem", canaries[3]}, false},
		{"set PEM stdin", e, pem, []string{"set", "--string", "pem"}, false},
		{"get string", e, "", []string{"get", "--string", "s"}, true},
		{"get object", e, "", []string{"get", "--group", "users", "--owner", "3", "o"}, true},
		{"get PEM", e, "", []string{"get", "--string", "pem"}, true},
		{"get --string of an object", e, "",
			[]string{"get", "--string", "--group", "users", "--owner", "3", "o"}, false},
		{"bad JSON argument", e, "", []string{"set", "j", `{"x": ` + canaries[6]}, false},
		{"bad JSON stdin", e, `["` + canaries[7] + `", oops]`, []string{"set", "j"}, false},
		{"flag after KEY", e, "", []string{"set", "j", "--value=" + canaries[8]}, false},
		{"unknown flag", e, "", []string{"set", "--value=" + canaries[9], "j"}, false},
		{"extra arguments", e, "", []string{"set", "j", canaries[10], canaries[11]}, false},
		{"set for rotation", e, "", []string{"set", "r", `"` + canaries[13] + `"`}, false},
		{"list", e, "", []string{"list"}, false},
		{"list json", e, "", []string{"list", "--json"}, false},
		{"list all", e, "", []string{"list", "--all"}, false},
		{"list all json", e, "", []string{"list", "--all", "--json"}, false},
		{"import", e, "", []string{"import", importFile}, false},
		{"import bad line", e, "", []string{"import", badImport}, false},
		{"import cut line", e, "", []string{"import", badImport2}, false},
		{"import stdin bad", e, `{"key": "x", "value": ` + canaries[5] + `}`, []string{"import", "-"}, false},
		{"get wrong key", e.with(keyOther, ""), "", []string{"get", "--string", "s"}, false},
		{"verify wrong key", e.with(keyOther, ""), "", []string{"verify", "--json"}, false},
		{"rotate dry run", rotating, "", []string{"rotate", "--dry-run"}, false},
		{"rotate", rotating, "", []string{"rotate", "--json"}, false},
		{"rotate again", rotating, "", []string{"rotate"}, false},
		{"verify", rotating, "", []string{"verify"}, false},
		{"verify json", rotating, "", []string{"verify", "--json"}, false},
		{"set under other key", e.with(keyOther, ""), "", []string{"set", "d", `"` + canaries[14] + `"`}, false},
		{"rotate with a failure", rotating, "", []string{"rotate", "--json"}, false},
		{"rotate text with a failure", rotating, "", []string{"rotate"}, false},
		{"verify with a failure", e.with(keyNew, ""), "", []string{"verify"}, false},
		{"short key", e.with(shortKey, ""), "", []string{"get", "s"}, false},
		{"bad previous key", e.with(keyNew, keyOld+","+badPrevious), "", []string{"get", "s"}, false},
		{"raw key form", e.with(keyOther, keyNew), "", []string{"get", "d"}, true},
		{"delete", rotating, "", []string{"delete", "s"}, false},
		{"delete missing", rotating, "", []string{"delete", "s"}, false},
		{"get missing", rotating, "", []string{"get", "s"}, false},
		{"migrate status", e, "", []string{"migrate", "status"}, false},
		{"migrate down refused", e, "", []string{"migrate", "down"}, false},
		{"keygen", env{}, "", []string{"keygen"}, true},
		{"help", e, "", []string{"help"}, false},
	}
	for _, c := range commands {
		steps = append(steps, step{"help " + c.name, e, "", []string{c.name, "--help"}, false})
	}

	for _, st := range steps {
		r := run(t, st.env, st.stdin, st.args...)
		outputs := []struct{ name, text string }{{"stderr", r.Stderr}}
		if !st.valueOut {
			outputs = append(outputs, struct{ name, text string }{"stdout", r.Stdout})
		}
		for _, out := range outputs {
			for i, f := range forbidden {
				if strings.Contains(out.text, f) {
					t.Errorf("step %q: %s holds forbidden text #%d (a value or a key)", st.name, out.name, i)
				}
			}
		}
	}

	// Tampered rows and the table itself: the database holds no plaintext.
	tamper(t, pool, "n")
	r := run(t, rotating, "", "get", "n")
	for i, f := range forbidden {
		if strings.Contains(r.Stdout+r.Stderr, f) {
			t.Errorf("get of a tampered row: output holds forbidden text #%d", i)
		}
	}
	rows, err := pool.Query(t.Context(), `SELECT key || ' ' || "group" || ' ' || value FROM secrets`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		for i, f := range forbidden {
			if strings.Contains(s, f) {
				t.Errorf("the secrets table holds forbidden text #%d in the clear", i)
			}
		}
	}
}
