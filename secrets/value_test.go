package secrets

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func deep(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

type Inner struct{ S string }

type embedding struct {
	Inner
	hidden string
}

func TestEncodeValueRefusesInvalidUTF8(t *testing.T) {
	bad := "ok\xffok"
	for _, tc := range []struct {
		name string
		v    any
		want string // "" when the value is refused
	}{
		{"valid U+FFFD", "\uFFFD", "\"\uFFFD\""},
		{"escaped backslash then ufffd", `\ufffd`, `"\\ufffd"`},
		{"raw message with the escape", json.RawMessage(`"\ufffd"`), `"\ufffd"`},
		{"raw message compacted", json.RawMessage(`{ "a" : 1 }`), `{"a":1}`},
		{"html kept", "<a&b>", `"<a&b>"`},
		{"unexported field ignored", embedding{Inner{"x"}, bad}, `{"S":"x"}`},
		{"string", bad, ""},
		{"map key", map[string]int{bad: 1}, ""},
		{"map value", map[string]any{"k": []any{bad}}, ""},
		{"struct field", Inner{bad}, ""},
		{"embedded struct field", embedding{Inner: Inner{bad}}, ""},
		{"pointer", &bad, ""},
		{"raw message", json.RawMessage("\"\xff\""), ""},
		{"deepest allowed", json.RawMessage(deep(MaxValueDepth)), deep(MaxValueDepth)},
		{"too deep", json.RawMessage(deep(MaxValueDepth + 1)), ""},
		{"brackets in strings do not nest", `[[{"`, `"[[{\""`},
		{"largest allowed", strings.Repeat("a", MaxValueSize-2), `"` + strings.Repeat("a", MaxValueSize-2) + `"`},
		{"too large", strings.Repeat("a", MaxValueSize-1), ""},
		{"surrogate pair", json.RawMessage(`"\ud83d\udd11"`), `"\ud83d\udd11"`},
		{"escaped backslash before a surrogate-like text", json.RawMessage(`"\\ud800"`),
			`"\\ud800"`},
		{"lone high surrogate", json.RawMessage(`"\ud800"`), ""},
		{"lone low surrogate", json.RawMessage(`"\udc00"`), ""},
		{"high then a letter", json.RawMessage(`"\ud83d\u0041"`), ""},
		{"lone surrogate in a key", json.RawMessage(`{"\ud800":1}`), ""},
		{"string option", struct {
			S string `json:",string"`
		}{bad}, ""},
		{"skipped field", struct {
			S string `json:"-"`
			T string
		}{bad, `\ufffd`}, `{"T":"\\ufffd"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := encodeValue(tc.v)
			if tc.want == "" {
				if !errors.Is(err, ErrInvalidArgument) {
					t.Errorf("got err %v, want ErrInvalidArgument", err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("got %d bytes, %v; want %d bytes", len(got), err, len(tc.want))
			}
		})
	}
}

func TestWrongKeyAlsoMatchesIntegrity(t *testing.T) {
	err := &OpError{"get", Name{Group: "g", Key: "k"}, ErrWrongKey}
	if !errors.Is(err, ErrWrongKey) || !errors.Is(err, ErrIntegrity) {
		t.Errorf("a wrong key must match ErrWrongKey and ErrIntegrity")
	}
	if errors.Is(ErrIntegrity, ErrWrongKey) {
		t.Errorf("an integrity failure must not match ErrWrongKey")
	}
}
