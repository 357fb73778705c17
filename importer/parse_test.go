package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/sqlsecrets/sqlsecrets/internal/jsontext"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// parseSeeds are lines for the parser tests and fuzzers.
var parseSeeds = []string{
	`{"group":"users","owner":42,"key":"k","value":"v"}`,
	`{ "key" : "k" , "value" : { "a" : [ 1 , "}" , "\"]" ] } , "owner" : null }`,
	`{"\u006bey":"k","value":1}`,
	`{"key":"k","\u006bey":"j","value":1}`,
	`{"key":"k","value":1,"value":2}`,
	`{"key":"k","value":1} x`,
	`{"key":"k","value":1}{}`,
	`{"key":"k","value":1}]`,
	`{"key":"k","value":1`,
	`{"key":"\ud800","value":1}`,
	`{"key":"\ud83d\ude00","value":1}`,
	"{\"key\":\"k\xff\",\"value\":1}",
	"{\"key\":\"k\",\"value\":1,\"x\xff\":1}",
	`{"key":"k","owner":-0,"value":1}`,
	`{"key":"k","owner":1.0,"value":1}`,
	`{"key":"k","owner":"1","value":1}`,
	`{"key":null,"value":1}`,
	`{"key":"k"}`,
	`{"value":1}`,
	`{}`,
	`[1]`,
	`"{}"`,
	`{"key":"k","value":"a\\"}`,
	`{"key":"k","value":[[[{"x":"]"}]]]}`,
	`{"key":"k","value":true}`,
	`{"key":"k","value":-1.5e3}`,
	`{"key":"k\u0000","value":1}`,
	`{"group":"","key":"k","value":1}`,
}

func TestParseLineMatchesDecoder(t *testing.T) {
	for _, line := range parseSeeds {
		checkParse(t, []byte(line))
	}
}

// FuzzParseLine checks that the fast parser accepts exactly the lines that
// a parser built on json.Decoder accepts, and reads them the same way.
func FuzzParseLine(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		text := bytes.TrimSpace([]byte(line))
		if len(text) == 0 {
			return
		}
		checkParse(t, text)
	})
}

// checkParse compares parseLine with referenceParse on text. Its messages
// name the line by number of bytes only: a line may hold a secret.
func checkParse(t *testing.T, text []byte) {
	t.Helper()
	got, gotErr := parseLine(text)
	want, wantErr := referenceParse(text)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("a line of %d bytes: parseLine error %v, reference error %v",
			len(text), gotErr != nil, wantErr != nil)
	}
	if gotErr != nil {
		if !errors.Is(gotErr, ErrBadLine) {
			t.Fatalf("a line of %d bytes: the error does not match ErrBadLine", len(text))
		}
		return
	}
	if !cmp.Equal(want, got) {
		t.Fatalf("a line of %d bytes: parseLine and the reference read different records",
			len(text))
	}
}

// referenceParse is the importer's earlier parser, built on json.Decoder:
// slower, and the yardstick of parseLine.
func referenceParse(text []byte) (Record, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return Record{}, ErrBadLine
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		name, isName := tok.(string)
		if err != nil || !isName {
			return Record{}, ErrBadLine
		}
		switch name {
		case "group", "owner", "key", "value":
		default:
			return Record{}, ErrBadLine
		}
		if _, dup := m[name]; dup {
			return Record{}, ErrBadLine
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return Record{}, ErrBadLine
		}
		m[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return Record{}, ErrBadLine
	}
	if _, err := dec.Token(); err != io.EOF {
		return Record{}, ErrBadLine
	}

	str := func(name string, dst *string) error {
		raw := m[name]
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, dst) != nil {
			return ErrBadLine
		}
		if _, lone := jsontext.Scan(raw); lone || !utf8.Valid(raw) {
			return ErrBadLine
		}
		return nil
	}
	n := secrets.Name{Group: secrets.DefaultGroup}
	if err := str("key", &n.Key); err != nil {
		return Record{}, err
	}
	if _, ok := m["group"]; ok {
		if err := str("group", &n.Group); err != nil {
			return Record{}, err
		}
	}
	if raw, ok := m["owner"]; ok && string(raw) != "null" {
		id, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return Record{}, ErrBadLine
		}
		n.Owner = &id
	}
	value, ok := m["value"]
	if !ok {
		return Record{}, ErrBadLine
	}
	return Record{Name: n, Value: value}, nil
}
