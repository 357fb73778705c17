package secrets

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

type rawM string

func (r rawM) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func TestAttack2ValueScan(t *testing.T) {
	cases := []struct {
		name   string
		v      any
		wantOK bool
	}{
		{"text backslash-u", `\ud800`, true},
		{"text double backslash", `\\ud800`, true},
		{"raw escaped backslash then u", json.RawMessage(`"\\ud800"`), true},
		{"raw triple backslash", json.RawMessage(`"\\\ud800"`), false},
		{"raw 4 backslash", json.RawMessage(`"\\\\ud800"`), true},
		{"raw pair", json.RawMessage(`"\ud83d\ude00"`), true},
		{"raw pair upper", json.RawMessage(`"\uD83D\uDE00"`), true},
		{"raw pair split by char", json.RawMessage(`"\ud83dx\ude00"`), false},
		{"raw pair split by escape", json.RawMessage(`"\ud83d\n\ude00"`), false},
		{"raw pair across strings", json.RawMessage(`["\ud83d","\ude00"]`), false},
		{"raw high high low", json.RawMessage(`"\ud83d\ud83d\ude00"`), false},
		{"raw low alone", json.RawMessage(`"\ude00"`), false},
		{"raw in key", json.RawMessage(`{"\ud800":1}`), false},
		{"raw pair in key", json.RawMessage(`{"\ud83d\ude00":1}`), true},
		{"raw high at end of key before colon", json.RawMessage(`{"a\ud800":1}`), false},
		{"marshaler lone", rawM(`"\ud800"`), false},
		{"marshaler with spaces", rawM(` [ "\ud800" ] `), false},
		{"raw fffd escape", json.RawMessage(`"\ufffd"`), true},
		{"string with fffd char", "\ufffd", true},
		{"invalid utf8 string", "a\xffb", false},
		{"brackets in strings", strings.Repeat("[", 5000), true},
		{"depth 1000", json.RawMessage(strings.Repeat("[", 1000) + strings.Repeat("]", 1000)), true},
		{"depth 1001", json.RawMessage(strings.Repeat("[", 1001) + strings.Repeat("]", 1001)), false},
		{"dup keys", json.RawMessage(`{"a":1,"a":2}`), true},
		{"big number", json.RawMessage(`1e400`), true},
	}
	for _, c := range cases {
		pt, err := encodeValue(c.v)
		if (err == nil) != c.wantOK {
			t.Errorf("%s: err=%v want ok=%v", c.name, err, c.wantOK)
			continue
		}
		if err != nil {
			continue
		}
		// Round trip as Get does: decode to any with UseNumber, re-encode, compare to a decode of pt.
		dec := json.NewDecoder(bytes.NewReader(pt))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Errorf("%s: accepted but Get cannot decode it: %v", c.name, err)
			continue
		}
		if s, ok := c.v.(string); ok && v != s {
			t.Errorf("%s: string not returned exactly", c.name)
		}
	}
}
