package importer_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/sqlsecrets/sqlsecrets/importer"
)

// The Reader, on one line, must accept exactly what a strict JSON parser
// accepts as an object of the members group, owner, key and value (each at
// most once, spelled exactly so after unescaping), and read it the same
// way. The yardstick here is json.Valid, which knows only the four JSON
// white space characters, plus an unescaper of its own that refuses
// half surrogate pairs and invalid UTF-8 in names.

type a3Rec struct {
	group, key string
	owner      *int64
	value      string
}

// a3Unquote decodes the JSON string literal raw, refusing invalid UTF-8
// and unpaired surrogates instead of replacing them.
func a3Unquote(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || !utf8.Valid(raw) {
		return "", false
	}
	var out []rune
	s := string(raw[1 : len(raw)-1])
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			r, size := utf8.DecodeRuneInString(s[i:])
			out = append(out, r)
			i += size
			continue
		}
		c := s[i+1]
		i += 2
		switch c {
		case '"', '\\', '/':
			out = append(out, rune(c))
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			u, _ := strconv.ParseUint(s[i:i+4], 16, 16)
			i += 4
			r := rune(u)
			if utf16.IsSurrogate(r) {
				if r >= 0xDC00 || i+6 > len(s) || s[i] != '\\' || s[i+1] != 'u' {
					return "", false
				}
				u2, _ := strconv.ParseUint(s[i+2:i+6], 16, 16)
				r = utf16.DecodeRune(r, rune(u2))
				if r == utf8.RuneError {
					return "", false
				}
				i += 6
			}
			out = append(out, r)
		}
	}
	return string(out), true
}

// a3Strict reads one line as the strict parser does; ok false is a refusal,
// blank true a line to skip.
func a3Strict(line []byte, first bool) (rec a3Rec, ok, blank bool) {
	if first {
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
	}
	if len(bytes.Trim(line, " \t\r\n")) == 0 {
		return rec, false, true
	}
	if !json.Valid(line) {
		return rec, false, false
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, _ := dec.Token(); tok != json.Delim('{') {
		return rec, false, false
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		tok, _ := dec.Token()
		name := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return rec, false, false
		}
		switch name {
		case "group", "owner", "key", "value":
		default:
			return rec, false, false
		}
		if _, dup := m[name]; dup {
			return rec, false, false
		}
		m[name] = v
	}
	rec.group = "global"
	var good bool
	if rec.key, good = a3Unquote(m["key"]); !good {
		return rec, false, false
	}
	if g, has := m["group"]; has {
		if rec.group, good = a3Unquote(g); !good {
			return rec, false, false
		}
	}
	if o, has := m["owner"]; has && string(o) != "null" {
		var id int64
		if json.Unmarshal(o, &id) != nil {
			return rec, false, false
		}
		rec.owner = &id
	}
	v, has := m["value"]
	if !has {
		return rec, false, false
	}
	rec.value = string(v)
	return rec, true, false
}

// a3Check reads line as the first line of an input and compares with the
// strict parser. Messages give the length and a verdict, never the line.
func a3Check(t *testing.T, line string) {
	t.Helper()
	if strings.ContainsRune(line, '\n') {
		return // one line per input here
	}
	want, ok, blank := a3Strict([]byte(line), true)
	got, err := importer.NewReader(strings.NewReader(line)).Next()
	switch {
	case blank:
		if err != io.EOF {
			t.Fatalf("a blank line of %d bytes: %v, want io.EOF", len(line), err)
		}
	case !ok:
		if err == nil {
			t.Fatalf("a line of %d bytes that strict JSON refuses was accepted", len(line))
		}
		if !errors.Is(err, importer.ErrBadLine) {
			t.Fatalf("a line of %d bytes: error does not match ErrBadLine: %v", len(line), err)
		}
	default:
		if err != nil {
			t.Fatalf("a line of %d bytes that strict JSON accepts was refused: %v", len(line), err)
		}
		sameOwner := (want.owner == nil) == (got.Name.Owner == nil) &&
			(want.owner == nil || *want.owner == *got.Name.Owner)
		if want.group != got.Name.Group || want.key != got.Name.Key || !sameOwner ||
			want.value != string(got.Value) {
			t.Fatalf("a line of %d bytes was read differently from strict JSON", len(line))
		}
	}
}

var a3Lines = []string{
	`{"group":"users","owner":42,"key":"k","value":"v"}`,
	` {"key":"k","value":1} `,
	"\t{\"key\":\"k\",\"value\":1}\r",
	"\ufeff{\"key\":\"k\",\"value\":1}",
	"\ufeff \ufeff{\"key\":\"k\",\"value\":1}",
	"{\"key\":\"k\",\f\"value\":1}",
	`{"key":"k","value":1,}`,
	`{"key":"k" "value":1}`,
	`{"key":"k","value":01}`,
	`{"key":"k","value":[1,]}`,
	`{"key":"k","value":"\x"}`,
	`{"Key":"k","value":1}`,
	`{"KEY":"k","value":1}`,
	`{"key":"k","value":1,"VALUE":2}`,
	`{"k\u0065y":"k","value":1}`,
	`{"key":"\udc00\ud800","value":1}`,
	`{"key":"\ud800\u0041","value":1}`,
	`{"key":"\uD83D\uDE00","value":1}`,
	"{\"key\":\"\xed\xa0\x80\",\"value\":1}",
	"{\"key\":\"\xc0\xaf\",\"value\":1}",
	`{"key":"k","owner":9223372036854775807,"value":1}`,
	`{"key":"k","owner":9223372036854775808,"value":1}`,
	`{"key":"k","owner":-9223372036854775808,"value":1}`,
	`{"key":"k","owner":1e2,"value":1}`,
	`{"key":"k","owner":true,"value":1}`,
	`{"key":"k","owner":null,"value":null}`,
	`{"key":"k","group":null,"value":1}`,
	`{"key":"k","value":"\u0000"}`,
	`{"key":"k","value":{"value":1,"value":2}}`,
	`{"key":"k","value":1}//`,
	`{"key":"k","value":1}` + "\x00",
	`{"key":"k","value":NaN}`,
	`{"key":"k","value":Infinity}`,
	`{"key":"k","value":'x'}`,
}

func TestAttack3ReaderIsStrictJSON(t *testing.T) {
	for i, line := range a3Lines {
		t.Run(strconv.Itoa(i), func(t *testing.T) { a3Check(t, line) })
	}
}

// a3NonJSONSpace are lines that differ from a good one only by white space
// that JSON does not know (form feed, vertical tab, NBSP, NEL, U+2028)
// around the object. A strict parser refuses every one.
var a3NonJSONSpace = map[string]string{
	"form feed after":       "{\"key\":\"k\",\"value\":1}\f",
	"vertical tab before":   "\v{\"key\":\"k\",\"value\":1}",
	"NBSP after":            "{\"key\":\"k\",\"value\":1}\u00a0",
	"NEL after":             "{\"key\":\"k\",\"value\":1}\u0085",
	"line separator before": "\u2028{\"key\":\"k\",\"value\":1}",
	"form feed only":        "\f",
}

func TestAttack3ReaderTrimsOnlyJSONSpace(t *testing.T) {
	for name, line := range a3NonJSONSpace {
		t.Run(name, func(t *testing.T) { a3Check(t, line) })
	}
}

// FuzzAttack3ReaderIsStrictJSON compares the Reader with the strict parser
// on lines that TestAttack3ReaderTrimsOnlyJSONSpace does not cover.
func FuzzAttack3ReaderIsStrictJSON(f *testing.F) {
	for _, line := range a3Lines {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		b := []byte(line)
		if !bytes.Equal(bytes.TrimSpace(b), bytes.Trim(b, " \t\r\n")) {
			return // white space outside JSON's: TestAttack3ReaderTrimsOnlyJSONSpace
		}
		a3Check(t, line)
	})
}
