package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
)

func TestMigrate(t *testing.T) {
	t.Parallel()
	url, _ := pgtest.NewURL(t) // a schema without the table
	e := env{url: url, key: keyOld}
	noKey := env{url: url} // migrate needs no key

	steps := []struct {
		name string
		code int
		args []string
		want string // a regexp that stdout must match
	}{
		{"status before", 0, []string{"migrate", "status"}, `^pending\s+-\s+00001_create_secrets\.sql\n$`},
		{"get before", 1, []string{"get", "k"}, `^$`},
		{"up", 0, []string{"migrate", "up"}, `^applied 00001_create_secrets\.sql \(.+\)\n$`},
		{"up again", 0, []string{"migrate"}, `^nothing to apply: the schema is up to date\n$`},
		{"status after", 0, []string{"migrate", "status"},
			`^applied\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+00001_create_secrets\.sql\n$`},
		{"set", 0, []string{"set", "k", "1"}, `^$`},
		{"down refuses", 1, []string{"migrate", "down"}, `^$`},
		{"still there", 0, []string{"get", "k"}, `^1\n$`},
		{"down forced", 0, []string{"migrate", "--force", "down"},
			`^rolled back 00001_create_secrets\.sql \(.+\)\n$`},
		{"status down", 0, []string{"migrate", "status"}, `^pending\s+-\s+00001_create_secrets\.sql\n$`},
		{"down again", 0, []string{"migrate", "down"}, `^nothing to roll back: no migration is applied\n$`},
	}
	for _, st := range steps {
		ev := noKey
		if st.args[0] != "migrate" {
			ev = e
		}
		r := run(t, ev, "", st.args...)
		if r.Code != st.code || !regexp.MustCompile(st.want).MatchString(r.Stdout) {
			t.Fatalf("%s: sqlsecrets %s: exit %d, want %d; stdout %q does not match %q; stderr:\n%s",
				st.name, strings.Join(st.args, " "), r.Code, st.code, r.Stdout, st.want,
				scrub(r.Stderr))
		}
		switch st.name {
		case "get before":
			if !strings.Contains(r.Stderr, "hint: the secrets table does not exist yet: run 'sqlsecrets migrate'") {
				t.Errorf("get without the table: no hint to migrate:\n%s", scrub(r.Stderr))
			}
		case "down refuses":
			if !strings.Contains(r.Stderr, "holds 1 secret") || !strings.Contains(r.Stderr, "--force") {
				t.Errorf("migrate down with secrets: stderr does not explain:\n%s", scrub(r.Stderr))
			}
		}
	}
}
