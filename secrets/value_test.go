package secrets

import (
	"encoding/json"
	"errors"
	"testing"
)

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
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
