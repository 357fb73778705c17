package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

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

// withParam returns the connection string url with the parameter name set
// to value, in its URL or key=value form.
func withParam(url, name, value string) string {
	switch {
	case !strings.Contains(url, "://"):
		return url + " " + name + "=" + value
	case strings.Contains(url, "?"):
		return url + "&" + name + "=" + value
	}
	return url + "?" + name + "=" + value
}

// TestAllowDropSetting checks that pgx sends the run-time parameter that
// migrate --force down adds in the startup packet, and that the server
// takes the custom setting there, over one in the connection string.
func TestAllowDropSetting(t *testing.T) {
	t.Parallel()
	url, _ := pgtest.NewURL(t)
	for _, tt := range []struct {
		url    string
		params map[string]string
		want   string
	}{
		{url, nil, ""},
		{url, map[string]string{allowDropSetting: "on"}, "on"},
		{withParam(url, allowDropSetting, "on"), nil, "on"},
		{withParam(url, allowDropSetting, "on"), map[string]string{allowDropSetting: "off"}, "off"},
	} {
		cfg, err := poolConfig(tt.url, tt.params)
		if err != nil {
			t.Fatal(err)
		}
		pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var got *string
		err = pool.QueryRow(t.Context(), "SELECT current_setting($1, true)", allowDropSetting).Scan(&got)
		pool.Close()
		if err != nil {
			t.Fatal(err)
		}
		if (got == nil && tt.want != "") || (got != nil && *got != tt.want) {
			t.Errorf("with %v: %s is %v, want %q", tt.params, allowDropSetting, got, tt.want)
		}
	}
}

// TestMigrateDownGuard checks that migrate down without --force keeps a
// table that holds secrets even when DATABASE_URL allows the drop, and
// that --force drops it.
func TestMigrateDownGuard(t *testing.T) {
	t.Parallel()
	e, pool := db(t)
	must(t, 0, e, "", "set", "k", "1")
	allowing := env{url: withParam(e.url, allowDropSetting, "on")}
	r := must(t, 1, allowing, "", "migrate", "down")
	if !strings.Contains(r.Stderr, "the secrets table holds 1 secret") ||
		!strings.Contains(r.Stderr, "hint: ") || !strings.Contains(r.Stderr, "--force") {
		t.Errorf("migrate down with a secret: stderr does not explain:\n%s", scrub(r.Stderr))
	}
	var exists bool
	if err := pool.QueryRow(t.Context(), "SELECT to_regclass('secrets') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		t.Fatalf("migrate down without --force dropped a table holding a secret")
	}
	must(t, 0, env{url: e.url}, "", "migrate", "--force", "down")
	if err := pool.QueryRow(t.Context(), "SELECT to_regclass('secrets') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("migrate --force down left the table")
	}
}
