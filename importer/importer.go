// Package importer loads secrets from JSON Lines: one object per line,
//
//	{"group": "users", "owner": 42, "key": "api_token", "value": ...}
//
// where group defaults to "global", owner may be null or absent for a
// secret with no owner, and value is any JSON, null included.
//
// Import writes the records in batches, each batch in one statement, so a
// batch lands whole or not at all. A bad line stops the import before its
// batch is written; the error names the line, never its content.
package importer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"unicode/utf8"

	"github.com/sqlsecrets/sqlsecrets/internal/jsontext"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// DefaultBatchSize is the number of records written per statement when
// Options.BatchSize is 0.
const DefaultBatchSize = 500

// MaxBatchSize is the largest Options.BatchSize accepted.
const MaxBatchSize = 50_000

// MaxLineSize is the longest line Reader accepts, in bytes.
const MaxLineSize = 16 << 20

// Record is one secret read from a line. Like secrets.Entry, it hides its
// value in every fmt verb and in slog.
type Record struct {
	Line  int // counting from 1
	Name  secrets.Name
	Value json.RawMessage
}

// String returns the line, the name and a placeholder for the value.
func (r Record) String() string {
	return "importer.Record{line " + strconv.Itoa(r.Line) + ", " + r.Name.String() + ", value redacted}"
}

// GoString is String.
func (r Record) GoString() string { return r.String() }

// Format prints String for every verb.
func (r Record) Format(f fmt.State, _ rune) { io.WriteString(f, r.String()) }

// LogValue is String, for log/slog.
func (r Record) LogValue() slog.Value { return slog.StringValue(r.String()) }

// LineError is a line that could not be read. It does not quote the line.
type LineError struct {
	Line int
	Err  error
}

// Error returns "line N: reason".
func (e *LineError) Error() string { return "line " + strconv.Itoa(e.Line) + ": " + e.Err.Error() }

// Unwrap returns the reason.
func (e *LineError) Unwrap() error { return e.Err }

// ErrBadLine is the reason of every LineError about a line's content.
var ErrBadLine = errors.New(`not an object of "group", "owner", "key" and "value"`)

// Reader reads Records from JSON Lines. Blank lines are skipped.
type Reader struct {
	sc   *bufio.Scanner
	line int
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineSize)
	return &Reader{sc: sc}
}

// Next returns the next record, or io.EOF after the last one. A bad line is
// a *LineError matching ErrBadLine, and the Reader can go on past it; any
// other error, such as a line longer than MaxLineSize, ends the input.
func (r *Reader) Next() (Record, error) {
	for r.sc.Scan() {
		r.line++
		text := r.sc.Bytes()
		if r.line == 1 {
			text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf")) // a byte order mark
		}
		text = bytes.TrimSpace(text)
		if len(text) == 0 {
			continue
		}
		rec, err := parseLine(text)
		if err != nil {
			return Record{}, &LineError{Line: r.line, Err: err}
		}
		rec.Line = r.line
		return rec, nil
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("longer than %d bytes", MaxLineSize)
		}
		return Record{}, &LineError{Line: r.line + 1, Err: err}
	}
	return Record{}, io.EOF
}

// parseLine reads one object with the members group, owner, key and value,
// spelled exactly so, each at most once.
func parseLine(text []byte) (Record, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return Record{}, ErrBadLine
	}
	members := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		name, isName := tok.(string)
		if err != nil || !isName {
			return Record{}, ErrBadLine
		}
		switch name {
		case "group", "owner", "key", "value":
		default:
			return Record{}, fmt.Errorf("%w: unknown member (only group, owner, key, value)", ErrBadLine)
		}
		if _, dup := members[name]; dup {
			return Record{}, fmt.Errorf("%w: %s given twice", ErrBadLine, name)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return Record{}, ErrBadLine
		}
		members[name] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Record{}, ErrBadLine
	}
	if _, err := dec.Token(); err != io.EOF {
		return Record{}, fmt.Errorf("%w: more after the object", ErrBadLine)
	}
	return record(members)
}

// record checks the members of a line and makes its Record.
func record(m map[string]json.RawMessage) (Record, error) {
	n := secrets.Name{Group: secrets.DefaultGroup}
	if err := stringMember(m, "key", &n.Key); err != nil {
		return Record{}, err
	}
	if _, ok := m["group"]; ok {
		if err := stringMember(m, "group", &n.Group); err != nil {
			return Record{}, err
		}
	}
	if raw, ok := m["owner"]; ok && string(raw) != "null" {
		id, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return Record{}, fmt.Errorf("%w: owner is not a whole number", ErrBadLine)
		}
		n.Owner = &id
	}
	value, ok := m["value"]
	if !ok {
		return Record{}, fmt.Errorf("%w: value is missing", ErrBadLine)
	}
	return Record{Name: n, Value: value}, nil
}

// stringMember decodes the member name of m, which must be a JSON string.
func stringMember(m map[string]json.RawMessage, name string, dst *string) error {
	raw, ok := m[name]
	if !ok {
		return fmt.Errorf("%w: %s is missing", ErrBadLine, name)
	}
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, dst) != nil {
		return fmt.Errorf("%w: %s is not a string", ErrBadLine, name)
	}
	// encoding/json would turn invalid UTF-8 and half surrogate pairs into
	// U+FFFD, so that two different names could land in one row.
	if _, lone := jsontext.Scan(raw); lone || !utf8.Valid(raw) {
		return fmt.Errorf("%w: %s is not valid UTF-8 text", ErrBadLine, name)
	}
	return nil
}

// Options tune Import. The zero value is ready to use.
type Options struct {
	// BatchSize is how many records one statement writes.
	// Default DefaultBatchSize.
	BatchSize int

	// Progress, if set, is called after every batch with the number of
	// records written so far.
	Progress func(written int64)
}

// Import reads JSON Lines from r and stores every record with the current
// key of ring, overwriting secrets that exist. It returns how many records
// it wrote. It reads r from a goroutine of its own, ahead of the writes,
// and calls Progress from the caller's. When ctx is cancelled it stops
// before the next batch. On a
// bad line it stops, having written every batch before the one that holds
// the line and nothing of that one; the error names the line and says how
// many records were written.
func Import(ctx context.Context, db secrets.DBTX, ring *secrets.Keyring, r io.Reader,
	opts Options) (int64, error) {
	if opts.BatchSize < 0 || opts.BatchSize > MaxBatchSize {
		return 0, fmt.Errorf("import: %w: batch size %d is not within 1 to %d",
			secrets.ErrInvalidArgument, opts.BatchSize, MaxBatchSize)
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultBatchSize
	}

	// One goroutine reads, parses and seals the next batch while this one
	// writes the previous: the work of each side hides the other's.
	stop := make(chan struct{})
	defer close(stop)
	batches := make(chan prepared, 1)
	go prepare(NewReader(r), ring, opts.BatchSize, batches, stop)

	var written int64
	for b := range batches {
		if b.err != nil {
			return written, fmt.Errorf("import: %w (%d records written before this batch)",
				b.err, written)
		}
		if err := ctx.Err(); err != nil {
			return written, fmt.Errorf("import: stopped after %d records: %w", written, err)
		}
		// A batch that has started is written whole even if ctx is
		// cancelled: the import stops between batches.
		if err := b.sealed.Write(context.WithoutCancel(ctx), db); err != nil {
			return written, fmt.Errorf("import: %w (%d records written before this batch)",
				err, written)
		}
		written += int64(b.records)
		if opts.Progress != nil {
			opts.Progress(written)
		}
	}
	return written, nil
}

// prepared is one batch, sealed, or the error that ends the input.
type prepared struct {
	sealed  *secrets.Sealed
	records int
	err     error
}

// prepare reads records from in, seals them in batches of size and sends
// them, in order, until the input ends, a line is bad, or stop closes.
func prepare(in *Reader, ring *secrets.Keyring, size int, out chan<- prepared,
	stop <-chan struct{}) {
	defer close(out)
	send := func(p prepared) bool {
		select {
		case out <- p:
			return true
		case <-stop:
			return false
		}
	}
	var batch []secrets.Entry
	var lines []int
	seal := func() prepared {
		sealed, err := secrets.SealMany(ring, batch)
		var ie *secrets.IndexError
		if errors.As(err, &ie) {
			err = &LineError{Line: lines[ie.Index], Err: ie.Err}
		}
		p := prepared{sealed: sealed, records: len(batch), err: err}
		batch, lines = nil, nil
		return p
	}

	for {
		rec, err := in.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			send(prepared{err: err})
			return
		}
		batch = append(batch, secrets.Entry{Name: rec.Name, Value: rec.Value})
		lines = append(lines, rec.Line)
		if len(batch) == size {
			if p := seal(); !send(p) || p.err != nil {
				return
			}
		}
	}
	if len(batch) > 0 {
		send(seal())
	}
}
