package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// In-process tests of the helpers that the subprocess tests cannot reach
// precisely: redaction, the progress throttle, argument checks.

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"postgres://app@db:5432/app?sslmode=disable", "postgres://app@db:5432/app?sslmode=disable"},
		{"postgres://app:s3cret@db/app", "postgres://app:xxxxx@db/app"},
		{"postgresql://app:s3cret@db/app?password=s3cret&sslmode=require",
			"postgresql://app:xxxxx@db/app?password=xxxxx&sslmode=require"},
		{"postgres://app@db/app?sslpassword=s3cret", "postgres://app@db/app?sslpassword=xxxxx"},
		{"postgres://app:s3cret@db:badport/app", "(DATABASE_URL not shown: not a valid URL)"},
		{"host=db user=app password=s3cret dbname=app", "host=db user=app password=xxxxx dbname=app"},
		{"host=db password = 's3 cr\\'et' sslpassword=s3cret", "host=db password=xxxxx sslpassword=xxxxx"},
		{"host=db PASSWORD=s3cret", "host=db PASSWORD=xxxxx"},
		// Any spelling of the scheme and of the parameter names.
		{"POSTGRES://app:s3cret@db/app", "postgres://app:xxxxx@db/app"},
		{"Postgresql://app:s3cret@db/app", "postgresql://app:xxxxx@db/app"},
		{"mysql://app:s3cret@db/app", "mysql://app:xxxxx@db/app"},
		{"postgres://app@db/app?sslmode=require&PassWord=s3cret",
			"postgres://app@db/app?sslmode=require&PassWord=xxxxx"},
		{"postgres://app@db/app?SSLPASSWORD=s3cret&password=s3cret&password=s3again",
			"postgres://app@db/app?SSLPASSWORD=xxxxx&password=xxxxx&password=xxxxx"},
		{"postgres://app@db/app?pass%77ord=s3cret", "postgres://app@db/app?pass%77ord=xxxxx"},
		{"postgres://app@db/app?sslkey=/k.pem&passfile=/p", "postgres://app@db/app?sslkey=/k.pem&passfile=/p"},
		{"host=db PassWord = s3cret SslPassword='s3 x'", "host=db PassWord=xxxxx SslPassword=xxxxx"},
		{`host=db password=s3\ cret\ x user=app`, "host=db password=xxxxx user=app"},
	}
	for _, tt := range tests {
		got := redactURL(tt.in)
		if strings.Contains(got, "s3") {
			t.Errorf("redactURL of case %q left the password in", tt.want)
		}
		if got != tt.want {
			t.Errorf("redactURL: got %q, want %q", got, tt.want)
		}
	}
}

// fakeClock is a clock that tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgressPlain(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	clock := &fakeClock{t: time.Unix(1000, 0)}
	p := &progress{w: &out, label: "rotate", now: clock.now, every: time.Second}

	for i := int64(1); i <= 10; i++ { // ten batches in 0.9s: the first line, then the last
		p.update(fraction(i, 10), fmt.Sprintf("%d/10 rows", i), ", failed 0")
		clock.t = clock.t.Add(100 * time.Millisecond)
	}
	p.done()
	want := "sqlsecrets: rotate: 1/10 rows (10%), failed 0\n" +
		"sqlsecrets: rotate: 10/10 rows (100%), failed 0\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("plain progress (-want +got):\n%s", diff)
	}

	// After a second, the next update prints at once; done adds nothing.
	out.Reset()
	p = &progress{w: &out, label: "import", now: clock.now, every: time.Second}
	p.update(-1, "1 secret written", "")
	clock.t = clock.t.Add(1500 * time.Millisecond)
	p.update(-1, "2 secrets written", "")
	p.done()
	want = "sqlsecrets: import: 1 secret written\nsqlsecrets: import: 2 secrets written\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("plain progress (-want +got):\n%s", diff)
	}

	// Never updated: nothing at all.
	out.Reset()
	p = &progress{w: &out, label: "verify", now: clock.now, every: time.Second}
	p.done()
	if out.Len() != 0 {
		t.Errorf("progress without updates printed %q", out.String())
	}
}

func TestProgressTerminal(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	clock := &fakeClock{t: time.Unix(1000, 0)}
	p := &progress{w: &out, tty: true, label: "verify", now: clock.now, every: ttyEvery}
	p.update(0.5, "5/10 rows, current 5, previous 0, unreadable 0", "")
	clock.t = clock.t.Add(time.Second)
	p.update(1, "10/10 rows", "")
	p.done()
	want := "\rverify [============>           ]  50% 5/10 rows, current 5, previous 0, unreadable 0" +
		"\rverify [========================] 100% 10/10 rows" +
		strings.Repeat(" ", 36) + "\n" // blanks what is left of the longer line
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("terminal progress (-want +got):\n%s", diff)
	}
	if b := bar(-1); len(b) != barWidth+2 {
		t.Errorf("bar of an unknown total is %d wide, want %d", len(b), barWidth+2)
	}
}

func TestTrimNewline(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":          "",
		"a":         "a",
		"a\n":       "a",
		"a\r\n":     "a",
		"a\n\n":     "a\n",
		"a\r":       "a\r",
		"a\r\r\n":   "a\r",
		" a \t\n":   " a \t",
		"\n":        "",
		"line\nx":   "line\nx",
		"end\n\r\n": "end\n",
	} {
		if got := string(trimNewline([]byte(in))); got != want {
			t.Errorf("trimNewline(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseOwner(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"0", "42", "9223372036854775807"} {
		if _, err := parseOwner(ok); err != nil {
			t.Errorf("parseOwner(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-1", "+1", "abc", "1.5", " 1", "0x10", "9223372036854775808"} {
		if _, err := parseOwner(bad); err == nil {
			t.Errorf("parseOwner(%q) succeeded, want an error", bad)
		}
	}
}

func TestLooksLikeFlag(t *testing.T) {
	t.Parallel()
	for a, want := range map[string]bool{
		"-": false, "-1": false, "-0.5": false, "value": false, "": false,
		"--": true, "-x": true, "--group": true, "--owner=1": true,
	} {
		if got := looksLikeFlag(a); got != want {
			t.Errorf("looksLikeFlag(%q) = %v, want %v", a, got, want)
		}
	}
}

func TestDisplay(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"api_token": "api_token",
		"naïve":     `"na\u00efve"`,
		"users/42":  `"users/42"`,
		"a\x1b[2J":  `"a\x1b[2J"`,
		"my key":    `"my key"`,
		"tab\there": `"tab\there"`,
		"new\nline": `"new\nline"`,
		`q"uote`:    `"q\"uote"`,
		"":          `""`,
	} {
		if got := display(in); got != want {
			t.Errorf("display(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestPoolConfig checks that a connection string that does not parse is
// not shown in any spelling, and that run-time parameters reach the
// configuration, over those of the string.
func TestPoolConfig(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		"POSTGRES://app:s3cret@127.0.0.1:1/db",
		"Postgresql://app:s3cret@127.0.0.1:1/db",
		"postgres://app:s3cret@127.0.0.1:1/db?sslmode=bogus",
		"postgres://app@127.0.0.1:1/db?sslmode=bogus&PassWord=s3cret",
		"postgres://app:s3cret@127.0.0.1:port/db",
		"postgres://app:s3cret@[127.0.0.1/db",
		"host=127.0.0.1 password='s3cret sslmode=require",
		"host=127.0.0.1 port=1 password=s3cret sslmode=bogus",
	} {
		_, err := poolConfig(bad, nil)
		if err == nil || exitCode(err) != exitUsage {
			t.Errorf("poolConfig of a bad string: %v, want a usage error", err)
			continue
		}
		if msg := err.Error() + hintFor(err); strings.Contains(msg, "s3") ||
			strings.Contains(msg, "127.0.0.1") {
			t.Errorf("poolConfig of a bad string: the message shows the string")
		}
	}

	cfg, err := poolConfig("postgres://app@db/app?sqlsecrets.allow_drop=on",
		map[string]string{allowDropSetting: "off"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.ConnConfig.RuntimeParams[allowDropSetting]; got != "off" {
		t.Errorf("run-time parameter %s = %q, want off", allowDropSetting, got)
	}
}

func TestTerminalSafe(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain: text":             "plain: text",
		"café ☃":                  "café ☃",
		"a\x1b[31mred":            `a\x1b[31mred`,
		"bell\a del\x7f":          `bell\a del\x7f`,
		"c1 \u009b":               `c1 \u009b`,
		"bidi \u202eevil":         `bidi \u202eevil`,
		"line\u2028sep":           `line\u2028sep`,
		"bad \xff utf8":           `bad \xff utf8`,
		"replacement \ufffd ok":   "replacement \ufffd ok",
		"attempt 1:\n\tattempt 2": "attempt 1:; attempt 2",
		"cr\rlf\n":                `cr\rlf\n`,
	} {
		if got := terminalSafe(in); got != want {
			t.Errorf("terminalSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDisplayDistinct checks that names that a terminal shows alike, or
// that a column could run together, display differently.
func TestDisplayDistinct(t *testing.T) {
	t.Parallel()
	names := []string{
		"caf\u00e9", "cafe\u0301", // precomposed and decomposed
		"\u00c5", "\u212b", "A\u030a", // Å three ways
		"paypal", "p\u0430ypal", // Latin and Cyrillic a
		"key", "key\u200b", "k\u200dey", "key\u00a0", // invisible characters
		"a", `"a"`, `\"a\"`, "a b", "a\tb", "", `""`,
		"users/42", "users", "x\x1b[2J",
	}
	seen := map[string]string{}
	for _, n := range names {
		d := display(n)
		if prev, ok := seen[d]; ok {
			t.Errorf("display(%+q) = display(%+q) = %s", n, prev, d)
		}
		seen[d] = n
		for _, r := range d {
			if r < ' ' || r > '~' {
				t.Errorf("display(%+q) = %+q holds a character outside printable ASCII", n, d)
				break
			}
		}
	}
}
