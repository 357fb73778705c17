package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range commands {
		for _, args := range [][]string{
			{cmd.name, "--help"},
			{cmd.name, "-h"},
			{"help", cmd.name},
		} {
			r := run(t, env{}, "", args...)
			want := strings.TrimSpace("usage: sqlsecrets " + cmd.name + " " + cmd.synopsis)
			if r.Code != 0 || !strings.HasPrefix(r.Stdout, want) || r.Stderr != "" {
				t.Errorf("sqlsecrets %s: exit %d, stdout starts %q, stderr %q; want exit 0 "+
					"and a usage on stdout only", strings.Join(args, " "), r.Code,
					r.Stdout[:min(len(r.Stdout), len(want))], r.Stderr)
			}
			for _, s := range []string{"DATABASE_URL", "exit status"} {
				if !strings.Contains(r.Stdout, s) {
					t.Errorf("sqlsecrets %s: help does not mention %s", strings.Join(args, " "), s)
				}
			}
		}
	}

	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		r := run(t, env{}, "", args...)
		if r.Code != 0 || r.Stderr != "" {
			t.Errorf("sqlsecrets %s: exit %d, stderr %q; want 0 and none", args[0], r.Code, r.Stderr)
		}
		for _, s := range []string{"keygen", "migrate", "set", "get", "delete", "list", "import",
			"rotate", "verify", "DATABASE_URL", "SECRETS_KEY", "SECRETS_PREVIOUS_KEYS"} {
			if !strings.Contains(r.Stdout, s) {
				t.Errorf("sqlsecrets %s: overview does not mention %s", args[0], s)
			}
		}
	}

	// No arguments at all: the overview, on stderr, as a usage error.
	r := run(t, env{}, "")
	if r.Code != 2 || r.Stdout != "" || !strings.Contains(r.Stderr, "commands:") {
		t.Errorf("sqlsecrets without arguments: exit %d, stdout %q; want 2 and the overview on stderr",
			r.Code, r.Stdout)
	}
}

// TestUsageErrors checks the exit status and messages of mistakes in how
// the command is called. They are caught before any database access, so
// most cases need no database.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	noDB := env{key: keyOld}
	noKey := env{url: e.url}

	tests := []struct {
		name  string
		env   env
		stdin string
		args  []string
		code  int
		want  string // in stderr
	}{
		{"unknown command", e, "", []string{"frobnicate"}, 2,
			"unknown command: argument 1 is not a command"},
		{"flag before command", e, "", []string{"--group", "x"}, 2,
			"argument 1 is a flag, but the command comes first"},
		{"unknown flag", e, "", []string{"get", "--bogus", "k"}, 2, "argument 1 is not a flag of get"},
		{"unknown flag value not shown", e, "", []string{"set", "--value=xyz", "k"}, 2,
			"argument 1 is not a flag of set"},
		{"owner -1", e, "", []string{"get", "--owner", "-1", "k"}, 2, `invalid --owner "-1"`},
		{"owner without value", e, "", []string{"get", "--owner"}, 2,
			"flag --owner (argument 1) needs a value"},
		{"previous key equal to current", env{url: e.url, key: keyOld, previous: keyOld}, "",
			[]string{"get", "k"}, 2, "each key goes in once"},
		{"KEY starting with a dash", e, "", []string{"get", "-k"}, 2,
			"for a KEY that starts with '-', put -- before it"},
		{"JSON value starting with a dash", e, "", []string{"set", "k", "-x"}, 2,
			"the JSON argument is not valid JSON"},
		{"owner abc", e, "", []string{"get", "--owner", "abc", "k"}, 2, `invalid --owner "abc"`},
		{"owner empty", e, "", []string{"set", "--owner=", "k", "1"}, 2, "invalid --owner"},
		{"owner +1", e, "", []string{"delete", "--owner", "+1", "k"}, 2, "invalid --owner"},
		{"owner too large", e, "", []string{"list", "--owner", "99999999999999999999"}, 2,
			"too large"},
		{"bad JSON argument", e, "", []string{"set", "k", "{nope"}, 2, "not valid JSON"},
		{"bad JSON stdin", e, "[1,", []string{"set", "k"}, 2, "standard input is not valid JSON"},
		{"empty stdin", e, "", []string{"set", "k"}, 2, "standard input is empty"},
		{"set missing KEY", e, "", []string{"set"}, 2, "missing KEY"},
		{"get missing KEY", e, "", []string{"get"}, 2, "missing KEY"},
		{"delete missing KEY", e, "", []string{"delete"}, 2, "missing KEY"},
		{"set extra args", e, "", []string{"set", "k", "1", "2"}, 2, "at most one value"},
		{"get extra args", e, "", []string{"get", "k", "j"}, 2, "one KEY"},
		{"flag after KEY", e, "", []string{"get", "k", "--group", "g"}, 2, "flags go before KEY"},
		{"flag after value", e, "", []string{"set", "k", "1", "--string"}, 2, "flags go before KEY"},
		{"empty key", e, "", []string{"get", ""}, 2, "key is empty"},
		{"key too long", e, "", []string{"get", strings.Repeat("k", 151)}, 2, "more than 150"},
		{"list --all with --group", e, "", []string{"list", "--all", "--group", "g"}, 2,
			"cannot be combined"},
		{"list args", e, "", []string{"list", "x"}, 2, "takes no arguments"},
		{"migrate action", e, "", []string{"migrate", "sideways"}, 2,
			"unknown migrate action: argument 1 is not up, down or status"},
		{"import missing FILE", e, "", []string{"import"}, 2, "missing FILE"},
		{"import batch 0", e, "", []string{"import", "--batch", "0", "-"}, 2,
			`invalid --batch "0": less than 1`},
		{"rotate batch", e, "", []string{"rotate", "--batch", "-5"}, 2,
			`invalid --batch "-5": less than 1`},
		{"verify args", e, "", []string{"verify", "now"}, 2, "takes no arguments"},
		{"keygen args", e, "", []string{"keygen", "x"}, 2, "takes no arguments"},
		{"help unknown", e, "", []string{"help", "nope"}, 2, "argument 2 is not a command"},
		{"no DATABASE_URL", noDB, "", []string{"get", "k"}, 2, "DATABASE_URL is not set"},
		{"no DATABASE_URL migrate", noDB, "", []string{"migrate", "status"}, 2,
			"DATABASE_URL is not set"},
		{"no SECRETS_KEY", noKey, "", []string{"get", "k"}, 2, "SECRETS_KEY is not set"},
		{"short SECRETS_KEY", e.with("base64:c2hvcnQ=", ""), "", []string{"get", "k"}, 2,
			"decodes to 5 bytes"},
		{"bad SECRETS_PREVIOUS_KEYS", e.with(keyNew, keyOld+",nope"), "", []string{"verify"}, 2,
			"SECRETS_PREVIOUS_KEYS entry 2"},
		{"get missing", e, "", []string{"get", "missing"}, 3, `get global "missing": secret not found`},
		{"get missing owner", e, "", []string{"get", "--group", "g", "--owner", "0", "k"}, 3,
			`get g/0 "k"`},
		{"delete missing", e, "", []string{"delete", "missing"}, 3, "secret not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, tt.env, tt.stdin, tt.args...)
			got := result{Code: r.Code, Stdout: r.Stdout}
			if diff := cmp.Diff(result{Code: tt.code}, got); diff != "" {
				t.Errorf("exit status and stdout (-want +got):\n%s\nstderr:\n%s", diff, scrub(r.Stderr))
			}
			if !strings.Contains(r.Stderr, "sqlsecrets: error: "+tt.want) &&
				!strings.Contains(r.Stderr, tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, scrub(r.Stderr))
			}
			if tt.code == 2 && !strings.Contains(r.Stderr, "sqlsecrets: hint: ") {
				t.Errorf("usage error without a hint:\n%s", scrub(r.Stderr))
			}
			checkMessages(t, tt.name, r.Stderr)
		})
	}
}

func TestMissingEnvHints(t *testing.T) {
	t.Parallel()
	r := must(t, 2, env{url: "postgres://u@127.0.0.1:1/db"}, "", "set", "k", "1")
	for _, s := range []string{"SECRETS_KEY", "sqlsecrets keygen"} {
		if !strings.Contains(r.Stderr, s) {
			t.Errorf("missing SECRETS_KEY: stderr does not mention %s:\n%s", s, scrub(r.Stderr))
		}
	}
	r = must(t, 2, env{key: keyOld}, "", "list")
	if !strings.Contains(r.Stderr, "hint: set DATABASE_URL") {
		t.Errorf("missing DATABASE_URL: no hint naming it:\n%s", scrub(r.Stderr))
	}
}

// TestConnectError checks that an unreachable database is exit status 1
// and that the message hides the password of DATABASE_URL.
func TestConnectError(t *testing.T) {
	t.Parallel()
	const password = "pw-that-must-not-show"
	for _, url := range []string{
		"postgres://someone:" + password + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=5",
		"postgres://someone@127.0.0.1:1/db?sslmode=disable&password=" + password,
		"host=127.0.0.1 port=1 user=someone password=" + password + " sslmode=disable",
	} {
		r := run(t, env{url: url, key: keyOld}, "", "get", "k")
		if r.Code != 1 || r.Stdout != "" {
			t.Errorf("unreachable database: exit %d, stdout %q; want 1 and nothing", r.Code, r.Stdout)
		}
		if strings.Contains(r.Stderr, password) {
			t.Errorf("unreachable database: stderr shows the password of DATABASE_URL")
		}
		if !strings.Contains(r.Stderr, "cannot connect to") || !strings.Contains(r.Stderr, "xxxxx") {
			t.Errorf("unreachable database: stderr does not name the redacted URL:\n%s",
				strings.ReplaceAll(r.Stderr, password, "<password>"))
		}
	}
}

func TestKeygen(t *testing.T) {
	t.Parallel()
	form := regexp.MustCompile(`^base64:[A-Za-z0-9+/]{43}=\n$`)
	a := must(t, 0, env{}, "", "keygen")
	b := must(t, 0, env{}, "", "keygen")
	if !form.MatchString(a.Stdout) || a.Stderr != "" {
		t.Errorf("keygen: output is not base64: and 32 bytes and a newline, or stderr is not empty")
	}
	if a.Stdout == b.Stdout {
		t.Errorf("keygen: two runs printed the same key")
	}

	// The key works as SECRETS_KEY.
	e, _ := db(t)
	e.key = strings.TrimSuffix(a.Stdout, "\n")
	must(t, 0, e, "", "set", "k", `"v"`)
	r := must(t, 0, e, "", "get", "k")
	sameValue(t, "get with a keygen key", r.Stdout, "\"v\"\n")
}
