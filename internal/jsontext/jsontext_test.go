package jsontext

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestScan(t *testing.T) {
	for _, tc := range []struct {
		js    string
		depth int
		lone  bool
	}{
		{`1`, 0, false},
		{`[]`, 1, false},
		{`[[{"a":[1]}]]`, 4, false},
		{`"[[{"`, 0, false},
		{`["\"]]"]`, 1, false},
		{`"\ud83d\udd11"`, 0, false},
		{`"\uD83D\uDD11"`, 0, false},
		{`"\\ud800"`, 0, false},
		{`"\\\ud800"`, 0, true},
		{`"\ud800"`, 0, true},
		{`"\udc00"`, 0, true},
		{`"\ud800\u0041"`, 0, true},
		{`"\ud800x\udc00"`, 0, true},
		{`["\ud800","\udc00"]`, 1, true},
		{`{"\ud800":1}`, 1, true},
		{`"\ud800\ud800\udc00"`, 0, true},
	} {
		depth, lone := Scan([]byte(tc.js))
		if depth != tc.depth || lone != tc.lone {
			t.Errorf("Scan(%s) = %d, %v; want %d, %v", tc.js, depth, lone, tc.depth, tc.lone)
		}
	}
}

// FuzzScan checks Scan against encoding/json on valid JSON: a text without
// a lone surrogate decodes and encodes back to the same strings, and the
// depth it reports is the depth of the decoded value.
func FuzzScan(f *testing.F) {
	for _, s := range []string{`"\ud83d\udd11"`, `["\ud800"]`, `{"a":[[1,"]"]]}`, `"\\u0041"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, js string) {
		if !json.Valid([]byte(js)) || !utf8.ValidString(js) {
			return // callers check UTF-8 apart
		}
		depth, lone := Scan([]byte(js))
		var v any
		if err := json.Unmarshal([]byte(js), &v); err != nil {
			return // deeper than encoding/json goes
		}
		if got := valueDepth(v); got != depth {
			t.Fatalf("Scan reports depth %d, the value has %d", depth, got)
		}
		if !lone && hasReplacement(v) && !strings.Contains(strings.ToLower(js), `\ufffd`) &&
			!strings.Contains(js, "\uFFFD") {
			t.Fatalf("no lone surrogate reported, yet decoding produced U+FFFD")
		}
	})
}

func valueDepth(v any) int {
	d := 0
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			d = max(d, valueDepth(e))
		}
		return d + 1
	case map[string]any:
		for _, e := range v {
			d = max(d, valueDepth(e))
		}
		return d + 1
	}
	return 0
}

// hasReplacement reports whether a decoded string or key holds U+FFFD.
func hasReplacement(v any) bool {
	switch v := v.(type) {
	case string:
		for _, r := range v {
			if r == '\uFFFD' {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasReplacement(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if hasReplacement(k) || hasReplacement(e) {
				return true
			}
		}
	}
	return false
}
