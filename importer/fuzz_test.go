package importer_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/sqlsecrets/sqlsecrets/importer"
)

// FuzzReader feeds arbitrary text to the JSON Lines reader: it must never
// panic, every error must be a LineError, and lines must count upwards.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		`{"group":"users","owner":42,"key":"k","value":"v"}`,
		"{\"key\":\"k\",\"value\":null}\n\n{\"key\":\"j\",\"value\":[1,2]}\n",
		`{"key":"k","owner":-1,"value":1}`,
		`{"key":"k","owner":1e3,"value":1}`,
		`{"key":"k","value":1}{"key":"k","value":2}`,
		"\xff\xfe",
		`{"key":"k","value":"\ud800"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := importer.NewReader(strings.NewReader(in))
		last := 0
		for range 10000 {
			rec, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				var le *importer.LineError
				if !errors.As(err, &le) {
					t.Fatalf("error is not a LineError: %T", err)
				}
				if le.Line <= last {
					t.Fatalf("error at line %d after line %d", le.Line, last)
				}
				if !errors.Is(err, importer.ErrBadLine) {
					return // a read error ends the input
				}
				last = le.Line
				continue
			}
			if rec.Line <= last || rec.Value == nil {
				t.Fatalf("record at line %d after line %d, value nil %v", rec.Line, last, rec.Value == nil)
			}
			last = rec.Line
		}
	})
}
