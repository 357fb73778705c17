package importer

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestAttack2StrictLines(t *testing.T) {
	cases := []struct {
		name, line string
		wantOK     bool
	}{
		{"plain", `{"key":"k","value":1}`, true},
		{"dup", `{"key":"k","key":"j","value":1}`, false},
		{"dup escaped", `{"key":"k","\u006bey":"j","value":1}`, false},
		{"escaped only", `{"\u006bey":"k","value":1}`, true},
		{"case", `{"Key":"k","value":1}`, false},
		{"trailing garbage", `{"key":"k","value":1} x`, false},
		{"trailing object", `{"key":"k","value":1}{}`, false},
		{"trailing comma", `{"key":"k","value":1},`, false},
		{"trailing bracket", `{"key":"k","value":1}]`, false},
		{"trailing brace", `{"key":"k","value":1}}`, false},
		{"BOM", "\ufeff" + `{"key":"k","value":1}`, true},
		{"CRLF", "{\"key\":\"k\",\"value\":1}\r", true},
		{"lone surrogate key", `{"key":"\ud800","value":1}`, false},
		{"lone low surrogate group", `{"group":"\udc00","key":"k","value":1}`, false},
		{"invalid utf8 key", "{\"key\":\"k\xff\",\"value\":1}", false},
		{"invalid utf8 name member", "{\"key\":\"k\",\"value\":1,\"x\xff\":1}", false},
		// A value is checked where it is written (SetMany), with its line named.
		{"value lone surrogate", `{"key":"k","value":"\ud800"}`, true},
		{"owner -0", `{"key":"k","owner":-0,"value":1}`, true},
		{"owner 1.0", `{"key":"k","owner":1.0,"value":1}`, false},
	}
	for _, c := range cases {
		r := NewReader(strings.NewReader(c.line + "\n"))
		rec, err := r.Next()
		if (err == nil) != c.wantOK {
			t.Errorf("%s: err=%v, want ok=%v; key=%q group=%q", c.name, err, c.wantOK, rec.Name.Key, rec.Name.Group)
		}
		if err == nil {
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("%s: second Next: %v", c.name, err)
			}
		} else if !errors.Is(err, ErrBadLine) {
			t.Logf("%s: %v", c.name, err)
		}
	}
}

// Two different names in the file become one name in the database.
func TestAttack2SurrogateKeysCollide(t *testing.T) {
	r := NewReader(strings.NewReader(`{"key":"\ud800","value":"first"}` + "\n" +
		`{"key":"\udc00","value":"second"}` + "\n"))
	a, err1 := r.Next()
	b, err2 := r.Next()
	if err1 == nil && err2 == nil && a.Name.Key == b.Name.Key {
		t.Errorf("two distinct keys in the file (\\ud800, \\udc00) both read as %q: "+
			"the second silently overwrites the first",
			a.Name.Key)
	}
}
