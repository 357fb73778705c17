package importer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/sqlsecrets/sqlsecrets/internal/jsontext"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// parseLine reads one object with the members group, owner, key and value,
// spelled exactly so (escapes allowed), each at most once. It checks the
// whole object with json.Valid first and then walks it without decoding,
// so that a line costs a few small allocations; the walk relies on the
// text being valid JSON.
func parseLine(text []byte) (Record, error) {
	if len(text) == 0 || text[0] != '{' {
		return Record{}, ErrBadLine
	}
	end := valueEnd(text, 0) // the whole text when the object does not close
	if !json.Valid(text[:end]) {
		return Record{}, ErrBadLine
	}
	if end != len(text) { // text has no trailing space
		return Record{}, fmt.Errorf("%w: more after the object", ErrBadLine)
	}

	var m members
	i := skipSpace(text, 1)
	for text[i] != '}' {
		nameEnd := stringEnd(text, i)
		slot, err := m.slot(text[i:nameEnd])
		if err != nil {
			return Record{}, err
		}
		i = skipSpace(text, skipSpace(text, nameEnd)+1) // past the colon
		valueEnd := valueEnd(text, i)
		*slot = text[i:valueEnd]
		i = skipSpace(text, valueEnd)
		if text[i] == ',' {
			i = skipSpace(text, i+1)
		}
	}
	return m.record()
}

// members holds the raw JSON of each member of a line; nil is absent.
type members struct {
	group, owner, key, value []byte
}

// slot returns where the member named by the JSON string name goes.
func (m *members) slot(name []byte) (*[]byte, error) {
	var s string
	if bytes.IndexByte(name, '\\') >= 0 {
		if json.Unmarshal(name, &s) != nil {
			return nil, ErrBadLine
		}
	} else {
		s = string(name[1 : len(name)-1])
	}
	var slot *[]byte
	switch s {
	case "group":
		slot = &m.group
	case "owner":
		slot = &m.owner
	case "key":
		slot = &m.key
	case "value":
		slot = &m.value
	default:
		return nil, fmt.Errorf("%w: unknown member (only group, owner, key, value)", ErrBadLine)
	}
	if *slot != nil {
		return nil, fmt.Errorf("%w: %s given twice", ErrBadLine, s)
	}
	return slot, nil
}

// record checks the members of a line and makes its Record. The value is
// copied: the line's buffer is reused for the next line.
func (m *members) record() (Record, error) {
	n := secrets.Name{Group: secrets.DefaultGroup}
	if err := stringMember("key", m.key, &n.Key); err != nil {
		return Record{}, err
	}
	if m.group != nil {
		if err := stringMember("group", m.group, &n.Group); err != nil {
			return Record{}, err
		}
	}
	if m.owner != nil && string(m.owner) != "null" {
		id, err := strconv.ParseInt(string(m.owner), 10, 64)
		if err != nil {
			return Record{}, fmt.Errorf("%w: owner is not a whole number", ErrBadLine)
		}
		n.Owner = &id
	}
	if m.value == nil {
		return Record{}, fmt.Errorf("%w: value is missing", ErrBadLine)
	}
	return Record{Name: n, Value: append(json.RawMessage(nil), m.value...)}, nil
}

// stringMember decodes raw, the member name of a line, which must be a
// JSON string of valid UTF-8 text.
func stringMember(name string, raw []byte, dst *string) error {
	if raw == nil {
		return fmt.Errorf("%w: %s is missing", ErrBadLine, name)
	}
	if raw[0] != '"' {
		return fmt.Errorf("%w: %s is not a string", ErrBadLine, name)
	}
	// encoding/json would turn invalid UTF-8 and half surrogate pairs into
	// U+FFFD, so that two different names could land in one row.
	if !utf8.Valid(raw) {
		return fmt.Errorf("%w: %s is not valid UTF-8 text", ErrBadLine, name)
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		*dst = string(raw[1 : len(raw)-1])
		return nil
	}
	if _, lone := jsontext.Scan(raw); lone {
		return fmt.Errorf("%w: %s is not valid UTF-8 text", ErrBadLine, name)
	}
	if json.Unmarshal(raw, dst) != nil {
		return fmt.Errorf("%w: %s is not a string", ErrBadLine, name)
	}
	return nil
}

// stringEnd returns the index just past the string that starts at
// text[i], or len(text) when it does not close.
func stringEnd(text []byte, i int) int {
	for i++; i < len(text); i++ {
		switch text[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(text)
}

// valueEnd returns the index just past the JSON value that starts at
// text[i], in valid JSON. For an object or array it only counts brackets
// outside strings, so it also finds the end of one whose syntax is not
// checked yet, or returns len(text) when it does not close.
func valueEnd(text []byte, i int) int {
	switch text[i] {
	case '"':
		return stringEnd(text, i)
	case '{', '[':
		depth := 0
		for ; i < len(text); i++ {
			switch text[i] {
			case '"':
				i = stringEnd(text, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(text)
	}
	for ; i < len(text); i++ { // a number, true, false or null
		switch text[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return len(text)
}

// skipSpace returns the index of the first byte from i on that is not
// JSON white space.
func skipSpace(text []byte, i int) int {
	for i < len(text) {
		switch text[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}
