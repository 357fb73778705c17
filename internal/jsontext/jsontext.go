// Package jsontext checks JSON text for what encoding/json accepts but
// would not give back as written.
package jsontext

import "strconv"

// Scan returns the deepest nesting of arrays and objects in valid JSON
// text, and whether a string in it holds a \u escape of half a UTF-16
// surrogate pair without its other half, which a decoder would replace.
func Scan(js []byte) (deepest int, loneSurrogate bool) {
	d := 0
	inString := false
	pendingHigh := false // the last escape was a high surrogate
	for i := 0; i < len(js); i++ {
		c := js[i]
		if !inString {
			switch c {
			case '"':
				inString = true
			case '[', '{':
				d++
				deepest = max(deepest, d)
			case ']', '}':
				d--
			}
			continue
		}

		var r rune = -1 // the code unit of a \u escape, if c starts one
		switch {
		case c == '\\' && i+5 < len(js) && js[i+1] == 'u':
			if v, err := strconv.ParseUint(string(js[i+2:i+6]), 16, 16); err == nil {
				r = rune(v)
			}
			i += 5
		case c == '\\':
			i++ // a one-character escape
		case c == '"':
			inString = false
		}
		low := 0xDC00 <= r && r <= 0xDFFF
		if pendingHigh != low {
			return deepest, true
		}
		pendingHigh = 0xD800 <= r && r <= 0xDBFF
	}
	return deepest, false
}
