package secrets

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// decodeReference is what GetAs did before decodeValue took shortcuts: a
// Decoder with UseNumber. decodeValue must agree with it everywhere.
func decodeReference[T any](pt []byte) (T, error) {
	var v T
	dec := json.NewDecoder(bytes.NewReader(pt))
	dec.UseNumber()
	err := dec.Decode(&v)
	return v, err
}

// decodeTexts are valid JSON texts that reach each path of decodeValue.
var decodeTexts = []string{
	`""`, `"x"`, `"plain ascii value"`, `"café ☕ 𝄞"`, `"a\"b"`, `"a\\b"`, `"line\nbreak"`,
	`"\u00e9"`, `"\ud834\udd1e"`, `"\ud834"`, `"\udd1e x"`, "\"bad \xff utf8\"", "\"\xed\xa0\x80\"",
	`"a\/b"`, `"\u003cb\u003e \u0026 \"q\" \t\u0000"`, `"\u00e9\ud83d\ude00"`, `"\b\f\r"`,
	`"12345678901234567890"`, `"2006-01-02T15:04:05Z"`, `" "`, ` "lead"`, `"trail" `,
	"\t\"tab\"\n", `true`, `false`, `null`, ` true`, `null `,
	`0`, `-1`, `3.25`, `12345678901234567890`, `9007199254740993`, `1e400`, ` 5`,
	`[]`, `{}`, `[1,"a",null,true]`, `{"a":1,"b":[2.5,{"c":"d"}]}`, ` [ 1 ]`,
	`{"S":"x","N":7}`, `{"S":1}`, `{"A":"\ud800"}`, `"` + strings.Repeat("p", 5000) + `"`,
}

type decodeTarget struct {
	S string
	N json.Number
	A any
}

func TestDecodeValueMatchesDecoder(t *testing.T) {
	for _, text := range decodeTexts {
		if !json.Valid([]byte(text)) {
			t.Fatalf("test text %q is not valid JSON", text)
		}
		checkDecodeValue[any](t, text)
		checkDecodeValue[string](t, text)
		checkDecodeValue[*string](t, text)
		checkDecodeValue[bool](t, text)
		checkDecodeValue[json.Number](t, text)
		checkDecodeValue[json.RawMessage](t, text)
		checkDecodeValue[[]any](t, text)
		checkDecodeValue[map[string]any](t, text)
		checkDecodeValue[decodeTarget](t, text)
		checkDecodeValue[[]byte](t, text)
	}
}

func FuzzDecodeValue(f *testing.F) {
	for _, text := range decodeTexts {
		f.Add(text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if !json.Valid([]byte(text)) {
			return // GetAs decodes only what Open found valid
		}
		checkDecodeValue[any](t, text)
		checkDecodeValue[string](t, text)
		checkDecodeValue[decodeTarget](t, text)
	})
}

// checkDecodeValue compares decodeValue with the reference for one text
// and one target type. The test texts are not secrets, so they are shown.
func checkDecodeValue[T any](t *testing.T, text string) {
	t.Helper()
	want, wantErr := decodeReference[T]([]byte(text))
	var got T
	gotErr := decodeValue([]byte(text), &got)
	if (gotErr == nil) != (wantErr == nil) {
		t.Errorf("%T from %q: error %v, want %v", got, text, gotErr, wantErr)
		return
	}
	// On an error too, GetAs returns what was decoded: the same.
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%T from %q: got %#v, want %#v", got, text, got, want)
	}
}
