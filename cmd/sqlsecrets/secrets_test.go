package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestSetGetRoundTrip(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	const pem = "-----BEGIN PRIVATE KEY-----\nMIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4wggE6AgEAAkEA\n" +
		"fakefakefakefakefakefakefakefake==\n-----END PRIVATE KEY-----\n"

	tests := []struct {
		name  string
		args  []string // flags for set, before KEY
		arg   *string  // the JSON or string argument; nil for stdin
		stdin string
		get   []string // flags for get, before KEY
		want  string   // what get prints
	}{
		{name: "big integer", arg: ptr("12345678901234567890"), want: "12345678901234567890\n"},
		{name: "2^53+1", arg: ptr("9007199254740993"), want: "9007199254740993\n"},
		{name: "negative", arg: ptr("-1"), want: "-1\n"},
		{name: "fraction", arg: ptr("3.25"), want: "3.25\n"},
		{name: "null", arg: ptr("null"), want: "null\n"},
		{name: "empty string", arg: ptr(`""`), want: "\"\"\n"},
		{name: "empty array", arg: ptr("[]"), want: "[]\n"},
		{name: "empty object", arg: ptr("{}"), want: "{}\n"},
		{name: "false", arg: ptr("false"), want: "false\n"},
		{name: "unicode", arg: ptr(`"snow ☃ <&>"`), want: "\"snow ☃ <&>\"\n"},
		{name: "object compacted", arg: ptr(`{ "a" : [1, 2.50, {"b": null}] }`),
			want: `{"a":[1,2.50,{"b":null}]}` + "\n"},
		{name: "stdin JSON", stdin: "{\"n\": 12345678901234567890}\n",
			want: `{"n":12345678901234567890}` + "\n"},
		{name: "stdin string", args: []string{"--string"}, stdin: "plain text\n",
			want: "\"plain text\"\n"},
		{name: "stdin string CRLF", args: []string{"--string"}, stdin: "dos\r\n",
			get: []string{"--string"}, want: "dos\n"},
		{name: "stdin string one newline only", args: []string{"--string"}, stdin: "two\n\n",
			want: "\"two\\n\"\n"},
		{name: "stdin empty string", args: []string{"--string"}, stdin: "", want: "\"\"\n"},
		{name: "PEM as JSON", args: []string{"--string"}, stdin: pem,
			want: jsonString(strings.TrimSuffix(pem, "\n")) + "\n"},
		{name: "PEM raw", args: []string{"--string"}, stdin: pem, get: []string{"--string"},
			want: pem},
		{name: "argument string kept as is", args: []string{"--string"}, arg: ptr(" spaced\n"),
			get: []string{"--string"}, want: " spaced\n\n"},
		{name: "argument that looks negative", args: []string{"--string"}, arg: ptr("-x"),
			get: []string{"--string"}, want: "-x\n"},
		{name: "scoped", args: []string{"--group", "users", "--owner", "42"}, arg: ptr("7"),
			get: []string{"--group", "users", "--owner", "42"}, want: "7\n"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key := "k" + string(rune('a'+i))
			args := append(append([]string{"set"}, tt.args...), key)
			if tt.arg != nil {
				if looksLikeFlag(*tt.arg) {
					args = append(args[:len(args)-1], "--", key) // a value like a flag
				}
				args = append(args, *tt.arg)
			}
			r := must(t, 0, e, tt.stdin, args...)
			if r.Stdout != "" || r.Stderr != "" {
				t.Errorf("set printed something: %d bytes on stdout, %d on stderr",
					len(r.Stdout), len(r.Stderr))
			}
			r = must(t, 0, e, "", append(append([]string{"get"}, tt.get...), key)...)
			sameValue(t, "get", r.Stdout, tt.want)
			if r.Stderr != "" {
				t.Errorf("get wrote %d bytes on stderr", len(r.Stderr))
			}
		})
	}
}

func ptr(s string) *string { return &s }

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestGetStringOfNonString(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	must(t, 0, e, "", "set", "n", "42")
	r := must(t, 1, e, "", "get", "--string", "n")
	if r.Stdout != "" || !strings.Contains(r.Stderr, `get global "n": --string: the value is a number`) {
		t.Errorf("get --string of a number: stdout %d bytes; stderr:\n%s", len(r.Stdout), r.Stderr)
	}
}

// TestScopes checks that a secret of one scope is never another's: global
// and owned secrets, and owner 0, are all different.
func TestScopes(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	scopes := [][]string{
		nil,
		{"--group", "users"},
		{"--group", "users", "--owner", "0"},
		{"--group", "users", "--owner", "42"},
	}
	for i, sc := range scopes {
		must(t, 0, e, "", append(append([]string{"set"}, sc...), "token", string(rune('0'+i)))...)
	}
	for i, sc := range scopes {
		r := must(t, 0, e, "", append(append([]string{"get"}, sc...), "token")...)
		sameValue(t, "get "+strings.Join(sc, " "), r.Stdout, string(rune('0'+i))+"\n")
	}

	must(t, 0, e, "", "delete", "--group", "users", "--owner", "42", "token")
	must(t, 3, e, "", "delete", "--group", "users", "--owner", "42", "token")
	must(t, 3, e, "", "get", "--group", "users", "--owner", "42", "token")
	must(t, 0, e, "", "delete", "--group", "users", "token") // the one without an owner
	r := must(t, 0, e, "", "get", "--group", "users", "--owner", "0", "token")
	sameValue(t, "get users/0 after deletes", r.Stdout, "2\n")
	must(t, 0, e, "", "get", "token")
}

func TestList(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	must(t, 0, e, "", "set", "b", "1")
	must(t, 0, e, "", "set", "a", "1")
	must(t, 0, e, "", "set", "--group", "users", "--owner", "7", "my key", "1")
	must(t, 0, e, "", "set", "--group", "users", "other", "1")

	// List needs no key: it decrypts nothing.
	noKey := env{url: e.url}
	type row struct {
		ID    int64  `json:"id"`
		Group string `json:"group"`
		Owner *int64 `json:"owner"`
		Key   string `json:"key"`
		C     string `json:"created_at"`
		U     string `json:"updated_at"`
	}
	seven := int64(7)
	ignore := cmpopts.IgnoreFields(row{}, "ID", "C", "U")
	tests := []struct {
		args []string
		want []row
	}{
		{[]string{"list", "--json"}, []row{{Group: "global", Key: "a"}, {Group: "global", Key: "b"}}},
		{[]string{"list", "--group", "users", "--json"}, []row{{Group: "users", Key: "other"}}},
		{[]string{"list", "--group", "users", "--owner", "7", "--json"},
			[]row{{Group: "users", Owner: &seven, Key: "my key"}}},
		{[]string{"list", "--group", "nobody", "--json"}, []row{}},
		{[]string{"list", "--all", "--json"}, []row{
			{Group: "global", Key: "a"}, {Group: "global", Key: "b"},
			{Group: "users", Key: "other"}, {Group: "users", Owner: &seven, Key: "my key"},
		}},
	}
	for _, tt := range tests {
		r := must(t, 0, noKey, "", tt.args...)
		var got []row
		if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
			t.Fatalf("%s: output is not a JSON array: %v", strings.Join(tt.args, " "), err)
		}
		if diff := cmp.Diff(tt.want, got, ignore); diff != "" {
			t.Errorf("%s (-want +got):\n%s", strings.Join(tt.args, " "), diff)
		}
		for _, g := range got {
			for _, ts := range []string{g.C, g.U} {
				if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") {
					t.Errorf("%s: time %q is not RFC 3339 in UTC", strings.Join(tt.args, " "), ts)
				}
			}
		}
	}

	// The table: a header, then group, owner, key, created, updated.
	r := must(t, 0, noKey, "", "list", "--all")
	var got [][]string
	for line := range strings.Lines(r.Stdout) {
		f := strings.Fields(line)
		if len(f) == 6 { // a quoted key with a space splits in two
			f = []string{f[0], f[1], f[2] + " " + f[3], f[4], f[5]}
		}
		if len(f) != 5 {
			t.Fatalf("list --all: line with %d columns: %q", len(f), line)
		}
		got = append(got, f[:3])
	}
	want := [][]string{
		{"GROUP", "OWNER", "KEY"}, {"global", "-", "a"}, {"global", "-", "b"},
		{"users", "-", "other"}, {"users", "7", `"my key"`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("list --all table (-want +got):\n%s", diff)
	}

	r = must(t, 0, noKey, "", "list", "--group", "nobody")
	if r.Stdout != "" || !strings.Contains(r.Stderr, "no secrets in nobody") {
		t.Errorf("list of an empty scope: stdout %q, stderr %q", r.Stdout, r.Stderr)
	}
}

func TestWrongKey(t *testing.T) {
	t.Parallel()
	e, _ := db(t)
	must(t, 0, e, "", "set", "k", `"v"`)
	must(t, 0, e, "", "set", "--group", "users", "--owner", "42", "api_token", `"v"`)

	other := e.with(keyOther, "")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"get", "k"}, `get global "k": sealed with a key that is not in the keyring`},
		{[]string{"get", "--group", "users", "--owner", "42", "api_token"},
			`get users/42 "api_token": sealed with a key that is not in the keyring`},
	}
	for _, tt := range tests {
		r := must(t, 1, other, "", tt.args...)
		if r.Stdout != "" {
			t.Errorf("%s with the wrong key: %d bytes on stdout, want none", tt.args, len(r.Stdout))
		}
		if !strings.Contains(r.Stderr, "sqlsecrets: error: "+tt.want) {
			t.Errorf("%s with the wrong key: stderr does not say %q:\n%s", tt.args, tt.want,
				scrub(r.Stderr))
		}
		checkMessages(t, "get with the wrong key", r.Stderr)
	}

	// With the old key among the previous ones, the value reads again.
	r := must(t, 0, e.with(keyOther, keyOld), "", "get", "k")
	sameValue(t, "get with the key in SECRETS_PREVIOUS_KEYS", r.Stdout, "\"v\"\n")
}

func TestTampered(t *testing.T) {
	t.Parallel()
	e, pool := db(t)
	must(t, 0, e, "", "set", "--group", "g", "k", `"v"`)
	must(t, 0, e, "", "set", "fine", `"w"`)
	tamper(t, pool, "k")

	r := must(t, 1, e, "", "get", "--group", "g", "k")
	if r.Stdout != "" {
		t.Errorf("get of a tampered row: %d bytes on stdout, want none", len(r.Stdout))
	}
	if !strings.Contains(r.Stderr, `sqlsecrets: error: get g "k": integrity check failed`) {
		t.Errorf("get of a tampered row: stderr does not name the scope and key:\n%s", scrub(r.Stderr))
	}

	r = must(t, 1, e, "", "verify", "--json")
	var rep struct{ Total, Current, Previous, Unreadable int }
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("verify --json: %v", err)
	}
	if rep.Total != 2 || rep.Unreadable != 1 || rep.Current != 1 {
		t.Errorf("verify with a tampered row: %+v, want total 2, current 1, unreadable 1", rep)
	}
}

// tamper changes one character in the middle of the stored value of key,
// where every bit of a base64 character counts.
func tamper(t *testing.T, pool *pgxpool.Pool, key string) {
	t.Helper()
	ctx := context.Background()
	var id int64
	var v string
	if err := pool.QueryRow(ctx, `SELECT id, value FROM secrets WHERE key = $1`, key).Scan(&id, &v); err != nil {
		t.Fatalf("reading the row to tamper with: %v", err)
	}
	i := len(v) / 2
	c := byte('A')
	if v[i] == 'A' {
		c = 'B'
	}
	v = v[:i] + string(c) + v[i+1:]
	if _, err := pool.Exec(ctx, `UPDATE secrets SET value = $1 WHERE id = $2`, v, id); err != nil {
		t.Fatalf("tampering: %v", err)
	}
}
