package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// canary stands for a secret value typed where it does not belong. It
// holds an escape sequence and a control character too: neither may reach
// a terminal. Failures name the case, never the canary.
const canary = "canaryArg7f3e\x1b[2J\a"

// setFlags returns a cli running set and a flag set with set's flags.
func setFlags() (*cli, *flag.FlagSet) {
	c := &cli{stdout: io.Discard, stderr: io.Discard, cmd: setCommand}
	fs := c.flagSet()
	var sf scopeFlags
	sf.register(fs)
	fs.Bool("string", false, "")
	return c, fs
}

// TestParseErrors checks the message of every kind of flag error: a text
// of our own that says the argument's position and names only flags that
// the command defines, never the argument's text.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"undefined flag", []string{"--" + canary, "k"}, "argument 1 is not a flag of set"},
		{"undefined flag with value", []string{"--string", "-" + canary + "=x", "k"},
			"argument 2 is not a flag of set"},
		{"value where KEY goes", []string{"--string", "-" + canary},
			"argument 2 is not a flag of set"},
		{"PEM where KEY goes", []string{"--string", "-----BEGIN " + canary},
			"argument 2 is not a flag: a flag is -name or --name"},
		{"three dashes", []string{"---" + canary, "k"},
			"argument 1 is not a flag: a flag is -name or --name"},
		{"empty name with value", []string{"-=" + canary, "k"},
			"argument 1 is not a flag: a flag is -name or --name"},
		{"boolean with a value", []string{"--string=" + canary, "k"},
			"invalid value for --string (argument 1)"},
		{"single dash boolean with a value", []string{"-string=" + canary, "k"},
			"invalid value for --string (argument 1)"},
		{"missing value", []string{"--group"}, "flag --group (argument 1) needs a value"},
		{"flag after the value", []string{"k", "v", "--group=" + canary},
			"flag --group (argument 3) comes after KEY"},
		{"undefined flag after the value", []string{"k", "v", "--" + canary},
			"argument 3 starts with '-' but comes after KEY"},
		{"bad owner", []string{"--owner", canary, "k"},
			`invalid --owner "canaryArg7f3e\x1b[2J\a": not a whole number 0 or more`},
	}
	for _, tt := range tests {
		c, fs := setFlags()
		_, err := c.parse(fs, tt.args, "KEY", 2)
		e, ok := errors.AsType[*exitError](err)
		if !ok || e.code != exitUsage {
			t.Errorf("%s: got %T, want a usage error", tt.name, err)
			continue
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("%s: message (-want +got):\n%s", tt.name,
				cmp.Diff(tt.want, strings.ReplaceAll(got, canary, "<canary>")))
		}
		if e.hint == "" || strings.Contains(e.hint, canary) {
			t.Errorf("%s: no hint, or a hint that holds the argument", tt.name)
		}
	}
}

// TestParseSetValue checks that the argument after KEY is set's value
// whatever it starts with, and that "--" still ends the flags.
func TestParseSetValue(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"k", "-x"},
		{"k", "--string"},
		{"k", "---"},
		{"k", "-----BEGIN PRIVATE KEY-----"},
		{"--string", "k", "-x"},
		{"--string", "--", "k", "-x"},
		{"--", "-k", "-x"},
	} {
		c, fs := setFlags()
		rest, err := c.parse(fs, args, "KEY", 2)
		if err != nil || len(rest) != 2 || rest[1] != args[len(args)-1] {
			t.Errorf("parse %q: got %q, %v; want KEY and the value", args, rest, err)
		}
	}
}

func TestWorkersFlag(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"0": 0, "-0": 0, "4": 4, "64": 64} {
		b := &boundedFlag{name: "workers", min: 0, max: 64}
		if err := b.Set(in); err != nil || b.n != want {
			t.Errorf("--workers %s: got %d, %v; want %d", in, b.n, err, want)
		}
	}
	for _, in := range []string{"-1", "65", "x"} {
		b := &boundedFlag{name: "workers", min: 0, max: 64}
		if err := b.Set(in); err == nil || !strings.Contains(err.Error(), "--workers") {
			t.Errorf("--workers %q: got %v; want an error naming --workers", in, err)
		}
	}
}

func TestBatchFlag(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"1": 1, "500": 500, "50000": 50000, "007": 7} {
		b := &boundedFlag{name: "batch", n: 500, min: 1, max: 50000}
		if err := b.Set(in); err != nil || b.n != want {
			t.Errorf("--batch %s: got %d, %v; want %d", in, b.n, err, want)
		}
	}
	for in, why := range map[string]string{
		"0":                     "less than 1",
		"-5":                    "less than 1",
		"-0":                    "less than 1",
		"-99999999999999999999": "less than 1",
		"50001":                 "more than 50000",
		"2147483648":            "more than 50000",
		"4294967296":            "more than 50000",
		"1099511627776":         "more than 50000",
		"9223372036854775808":   "more than 50000",
		"":                      "not a whole number",
		"+5":                    "not a whole number",
		" 5":                    "not a whole number",
		"0x10":                  "not a whole number",
		"1e3":                   "not a whole number",
		"5\x1b[2J":              "not a whole number",
	} {
		b := &boundedFlag{name: "batch", n: 500, min: 1, max: 50000}
		err := b.Set(in)
		if err == nil || !strings.HasSuffix(err.Error(), ": "+why) || b.n != 500 {
			t.Errorf("--batch %q: got %v, n %d; want an error ending %q", in, err, b.n, why)
			continue
		}
		if strings.ContainsAny(err.Error(), "\x1b\a") {
			t.Errorf("--batch %q: the error holds a control character", in)
		}
	}
}

// TestArgumentsNeverEchoed runs every command with a canary in each place
// an argument can go wrong, and checks that no output holds it, nor any
// control character, and that each is a usage error with a hint.
func TestArgumentsNeverEchoed(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	const pem = "-----BEGIN PRIVATE KEY-----\nMIIEv" + canary + "\n-----END PRIVATE KEY-----"
	cases := [][]string{
		{canary},
		{"-" + canary},
		{"help", canary},
		{"set", "--" + canary, "k"},
		{"set", "---" + canary, "k"},
		{"set", "--string=" + canary, "k"},
		{"set", "--json=" + canary, "k"},
		{"set", "--string", "-" + canary},
		{"set", "--string", pem},
		{"set", "k", "v", "-" + canary},
		{"set", "k", "-" + canary},
		{"set", "k", pem},
		{"set", "k", "v", canary},
		{"set", strings.Repeat(canary, 12), "1"},
		{"set", "--group", strings.Repeat(canary, 12), "k", "1"},
		{"get", "-" + canary},
		{"get", "k", "-" + canary},
		{"get", "k", canary},
		{"get", strings.Repeat(canary, 12)},
		{"delete", "--" + canary + "=1", "k"},
		{"list", canary},
		{"list", "--all=" + canary},
		{"import", "-" + canary},
		{"rotate", "--dry-run=" + canary},
		{"verify", "--json=" + canary},
		{"migrate", canary},
		{"migrate", "--force=" + canary, "down"},
		{"keygen", canary},
		{"keygen", "-" + canary},
	}
	for i, args := range cases {
		r := run(t, e, "", args...)
		out := r.Stdout + r.Stderr
		if strings.Contains(out, "canaryArg7f3e") || strings.ContainsAny(out, "\x1b\a") {
			t.Errorf("case %d (%s): the argument, or a control character, is in the output",
				i, args[0])
		}
		if r.Code != exitUsage || !strings.Contains(r.Stderr, "sqlsecrets: hint: ") {
			t.Errorf("case %d (%s): exit %d; want 2 with a hint", i, args[0], r.Code)
		}
		checkMessages(t, "case "+args[0], r.Stderr)
	}

	// The exception: values of --owner and --batch are not secret, and are
	// shown, but escaped.
	for _, args := range [][]string{
		{"get", "--owner", canary, "k"},
		{"import", "--batch", canary, "-"},
		{"rotate", "--batch=" + canary},
	} {
		r := must(t, 2, e, "", args...)
		if strings.ContainsAny(r.Stderr, "\x1b\a") || !strings.Contains(r.Stderr, `\x1b[2J\a"`) {
			t.Errorf("%s: stderr does not show the value escaped:\n%s", args[1], r.Stderr)
		}
	}
}

// TestSetValueStartingWithDash checks that the argument after KEY is the
// value even when it starts with '-'.
func TestSetValueStartingWithDash(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	must(t, 0, e, "", "set", "--string", "pw", "-x")
	r := must(t, 0, e, "", "get", "--string", "pw")
	sameValue(t, "set --string pw -x", r.Stdout, "-x\n")

	must(t, 0, e, "", "set", "--string", "pem", "-----BEGIN PRIVATE KEY-----\nfake\n")
	r = must(t, 0, e, "", "get", "--string", "pem")
	sameValue(t, "set --string of a PEM", r.Stdout, "-----BEGIN PRIVATE KEY-----\nfake\n\n")

	must(t, 0, e, "", "set", "n", "-5")
	r = must(t, 0, e, "", "get", "n")
	sameValue(t, "set n -5", r.Stdout, "-5\n")

	r = must(t, 2, e, "", "set", "pw", "-x")
	if !strings.Contains(r.Stderr, "the JSON argument is not valid JSON") {
		t.Errorf("set pw -x: stderr does not say the JSON is invalid:\n%s", scrub(r.Stderr))
	}
}

// TestBatchBounds checks that rotate, verify and import refuse a --batch
// outside 1 to 50000 before they connect: the database here does not
// answer, and the error is about --batch.
func TestBatchBounds(t *testing.T) {
	t.Parallel()
	unreachable := env{url: "postgres://u@127.0.0.1:1/db?connect_timeout=5", key: keyOld}
	for _, args := range [][]string{
		{"rotate", "--batch", "50001"},
		{"rotate", "--batch", "4294967296"},
		{"verify", "--batch", "4294967296"},
		{"verify", "--batch=2147483648"},
		{"import", "--batch", "1099511627776", "-"},
		{"import", "--batch", "0", "-"},
	} {
		r := run(t, unreachable, "", args...)
		if r.Code != exitUsage || !strings.Contains(r.Stderr, "sqlsecrets: error: invalid --batch") ||
			!strings.Contains(r.Stderr, "hint: --batch takes a whole number from 1 to 50000") {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant 2 and the --batch error", strings.Join(args, " "),
				r.Code, scrub(r.Stderr))
		}
	}
}
