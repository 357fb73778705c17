package secrets

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"unicode/utf8"

	"github.com/sqlsecrets/sqlsecrets/internal/jsontext"
)

// Limits on the values that Set and SetMany accept. Both are far above
// what a secret needs and keep every stored value readable by Get.
const (
	// MaxValueSize is the largest JSON text of a value, in bytes.
	MaxValueSize = 1 << 20

	// MaxValueDepth is the deepest nesting of arrays and objects in a
	// value.
	MaxValueDepth = 1000
)

// encodeValue returns the JSON text of v. It refuses text that is not valid
// UTF-8 rather than let encoding/json replace it, and its errors never
// quote v.
func encodeValue(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("%w: value of type %T cannot be encoded as JSON", ErrInvalidArgument, v)
	}
	pt := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(pt) > MaxValueSize {
		return nil, fmt.Errorf("%w: value is %d bytes of JSON, more than the maximum of %d",
			ErrInvalidArgument, len(pt), MaxValueSize)
	}
	d, lone := jsontext.Scan(pt)
	if d > MaxValueDepth {
		return nil, fmt.Errorf("%w: value nests %d levels deep, more than the maximum of %d",
			ErrInvalidArgument, d, MaxValueDepth)
	}
	if lone {
		return nil, fmt.Errorf("%w: value holds half of a UTF-16 surrogate pair", ErrInvalidArgument)
	}

	// encoding/json passes the output of MarshalJSON and json.RawMessage
	// through unchecked, and writes every invalid byte of a Go string as
	// the escape \ufffd (or \\ufffd, for a field encoded twice with the
	// ",string" option). Only when such an escape appears is the value
	// walked, to tell a replaced byte from an escape written on purpose.
	if !utf8.Valid(pt) || (bytes.Contains(pt, []byte(`\ufffd`)) && hasInvalidText(reflect.ValueOf(v), 0)) {
		return nil, fmt.Errorf("%w: value holds text that is not valid UTF-8", ErrInvalidArgument)
	}
	return pt, nil
}

// maxDepth bounds hasInvalidText on values that nest deeper than any
// encoding/json would accept.
const maxDepth = 10000

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// hasInvalidText reports whether a string or map key that encoding/json
// would encode from v is not valid UTF-8. It follows encoding/json's
// order: MarshalJSON, then MarshalText, then the kind of v.
func hasInvalidText(v reflect.Value, depth int) bool {
	if !v.IsValid() || depth > maxDepth {
		return false
	}
	if implements(v, marshalerType) {
		return false // its output was checked as bytes
	}
	if implements(v, textMarshalerType) {
		return invalidText(v)
	}
	switch v.Kind() {
	case reflect.String:
		return !utf8.ValidString(v.String())
	case reflect.Pointer, reflect.Interface:
		return hasInvalidText(v.Elem(), depth+1)
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return false // base64, or a json.RawMessage checked as bytes
		}
		for i := range v.Len() {
			if hasInvalidText(v.Index(i), depth+1) {
				return true
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			if hasInvalidText(iter.Key(), depth+1) || hasInvalidText(iter.Value(), depth+1) {
				return true
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if (f.IsExported() || f.Anonymous) && f.Tag.Get("json") != "-" && hasInvalidText(v.Field(i), depth+1) {
				return true
			}
		}
	}
	return false
}

// implements reports whether encoding/json would use v's method of the
// interface t: on v itself, or on its address when v is addressable.
func implements(v reflect.Value, t reflect.Type) bool {
	return v.Type().Implements(t) || (v.CanAddr() && v.Addr().Type().Implements(t))
}

// invalidText reports whether v's MarshalText output is not valid UTF-8.
func invalidText(v reflect.Value) bool {
	if !v.Type().Implements(textMarshalerType) {
		v = v.Addr()
	}
	if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
		return false
	}
	if !v.CanInterface() {
		return false
	}
	text, err := v.Interface().(encoding.TextMarshaler).MarshalText()
	return err == nil && !utf8.Valid(text)
}

// decodeValue decodes the JSON text pt into v as encoding/json does with
// UseNumber: a number that lands in an interface value is a json.Number.
// It takes two shortcuts that give the same result with less work.
func decodeValue[T any](pt []byte, v *T) error {
	// A text that is one JSON string with nothing to unescape is the
	// common secret; for a string or interface target it is that text.
	if s, ok := plainString(pt); ok {
		switch p := any(v).(type) {
		case *string:
			*p = string(s)
			return nil
		case *any:
			*p = string(s)
			return nil
		}
	}

	// UseNumber changes only how a number decodes into an interface
	// value. A text that starts as a string, true, false or null holds no
	// number, and json.Unmarshal decodes it alike without a reader and the
	// buffer that a Decoder fills from it.
	if len(pt) > 0 {
		switch pt[0] {
		case '"', 't', 'f', 'n':
			return json.Unmarshal(pt, v)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(pt))
	dec.UseNumber()
	return dec.Decode(v)
}

// validJSON reports whether pt is one JSON value. The common secret, a
// string with nothing to unescape, is recognized without json.Valid's
// state machine.
func validJSON(pt []byte) bool {
	if _, ok := plainString(pt); ok {
		return true
	}
	return json.Valid(pt)
}

// plainString returns the text between the quotes when js is exactly
// one JSON string with no escape, no control character and only valid
// UTF-8: then encoding/json would decode it to that text unchanged.
func plainString(js []byte) ([]byte, bool) {
	if len(js) < 2 || js[0] != '"' || js[len(js)-1] != '"' {
		return nil, false
	}
	s := js[1 : len(js)-1]
	for _, c := range s {
		if c < 0x20 || c == '"' || c == '\\' {
			return nil, false
		}
	}
	return s, utf8.Valid(s)
}
