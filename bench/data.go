package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sqlsecrets/sqlsecrets/importer"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// ValueChars is how many characters each generated value has.
const ValueChars = 200

// Data makes the rows that the scenarios write. Row i, counting from 0,
// has the group and key of sample i modulo the number of samples and the
// owner i+1, so that every row has a scope of its own, and a value of
// ValueChars characters cut from the text of the samples' values. The
// value is a JSON string, as most secrets are: tokens, passwords, DSNs,
// PEM text.
type Data struct {
	names  []secrets.Name // group and key of each sample; Owner is unused
	values []string       // the value of each sample's rows
	json   [][]byte       // the JSON text of each value
}

// LoadData reads the samples from JSON Lines in the format that
// importer.Import reads, such as testdata/sample-secrets.jsonl.
func LoadData(r io.Reader) (*Data, error) {
	var corpus strings.Builder
	var names []secrets.Name
	in := importer.NewReader(r)
	for {
		rec, err := in.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading samples: %w", err)
		}
		names = append(names, secrets.Name{Group: rec.Name.Group, Key: rec.Name.Key})

		// Strings contribute their text, anything else its JSON.
		var s string
		if json.Unmarshal(rec.Value, &s) != nil {
			var buf bytes.Buffer
			if err := json.Compact(&buf, rec.Value); err != nil {
				return nil, fmt.Errorf("reading samples: line %d: %w", rec.Line, err)
			}
			s = buf.String()
		}
		corpus.WriteString(s)
	}

	text := []rune(corpus.String())
	if len(names) == 0 || len(text) < ValueChars {
		return nil, errors.New("reading samples: too few samples to make values from")
	}
	d := &Data{names: names, values: make([]string, len(names)), json: make([][]byte, len(names))}
	span := len(text) - ValueChars + 1
	for k := range names {
		// A prime stride spreads the windows over the whole text.
		start := (k * 7919) % span
		d.values[k] = string(text[start : start+ValueChars])
		js, err := encodeJSON(d.values[k])
		if err != nil {
			return nil, err
		}
		d.json[k] = js
	}
	return d, nil
}

// OpenData is LoadData of the file at path.
func OpenData(path string) (*Data, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return LoadData(f)
}

// encodeJSON encodes v as the facade does: no HTML escaping, no newline.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Samples returns how many samples the rows cycle through.
func (d *Data) Samples() int { return len(d.names) }

// Name returns the name of row i.
func (d *Data) Name(i int) secrets.Name {
	n := d.names[i%len(d.names)]
	owner := int64(i) + 1
	n.Owner = &owner
	return n
}

// Value returns the value of row i: a string of ValueChars characters.
func (d *Data) Value(i int) string { return d.values[i%len(d.values)] }

// JSON returns the JSON text of the value of row i, as Store.Set encodes
// it. The caller must not change it.
func (d *Data) JSON(i int) []byte { return d.json[i%len(d.json)] }

// MeanJSONBytes returns the mean size of the values' JSON text, in bytes.
func (d *Data) MeanJSONBytes() float64 {
	total := 0
	for _, js := range d.json {
		total += len(js)
	}
	return float64(total) / float64(len(d.json))
}

// JSONLines returns rows 0 to n-1 as JSON Lines that importer.Import reads.
func (d *Data) JSONLines(n int) ([]byte, error) {
	type line struct {
		Group string          `json:"group"`
		Owner int64           `json:"owner"`
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range n {
		name := d.Name(i)
		if err := enc.Encode(line{name.Group, *name.Owner, name.Key, d.JSON(i)}); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}
