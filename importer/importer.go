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
	"strconv"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// DefaultBatchSize is the number of records written per statement when
// Options.BatchSize is 0.
const DefaultBatchSize = 500

// MaxLineSize is the longest line Reader accepts, in bytes.
const MaxLineSize = 16 << 20

// Record is one secret read from a line.
type Record struct {
	Line  int // counting from 1
	Name  secrets.Name
	Value json.RawMessage
}

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

// line is the shape of one input line.
type line struct {
	Group *string         `json:"group"`
	Owner json.RawMessage `json:"owner"`
	Key   *string         `json:"key"`
	Value json.RawMessage `json:"value"`
}

// Next returns the next record, or io.EOF after the last one. A bad line is
// a *LineError matching ErrBadLine, and the Reader can go on past it; any
// other error, such as a line longer than MaxLineSize, ends the input.
func (r *Reader) Next() (Record, error) {
	for r.sc.Scan() {
		r.line++
		text := bytes.TrimSpace(r.sc.Bytes())
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

func parseLine(text []byte) (Record, error) {
	var l line
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil || dec.More() {
		return Record{}, ErrBadLine
	}
	if l.Key == nil {
		return Record{}, fmt.Errorf("%w: key is missing", ErrBadLine)
	}
	if l.Value == nil {
		return Record{}, fmt.Errorf("%w: value is missing", ErrBadLine)
	}

	n := secrets.Name{Group: secrets.DefaultGroup, Key: *l.Key}
	if l.Group != nil {
		n.Group = *l.Group
	}
	if len(l.Owner) > 0 && string(l.Owner) != "null" {
		id, err := strconv.ParseInt(string(l.Owner), 10, 64)
		if err != nil {
			return Record{}, fmt.Errorf("%w: owner is not a whole number", ErrBadLine)
		}
		n.Owner = &id
	}
	return Record{Name: n, Value: l.Value}, nil
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
// it wrote. When ctx is cancelled it stops before the next batch. On a bad line it stops, having written every batch before the
// one that holds the line and nothing of that one; the error names the
// line and says how many records were written.
func Import(ctx context.Context, db secrets.DBTX, ring *secrets.Keyring, r io.Reader,
	opts Options) (int64, error) {
	if opts.BatchSize < 0 {
		return 0, fmt.Errorf("import: negative batch size %d", opts.BatchSize)
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultBatchSize
	}

	in := NewReader(r)
	var written int64
	batch := make([]secrets.Entry, 0, opts.BatchSize)
	lines := make([]int, 0, opts.BatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("import: stopped after %d records: %w", written, err)
		}
		// A batch that has started is written whole even if ctx is
		// cancelled: the import stops between batches.
		if err := secrets.SetMany(context.WithoutCancel(ctx), db, ring, batch); err != nil {
			var ie *secrets.IndexError
			if errors.As(err, &ie) {
				err = &LineError{Line: lines[ie.Index], Err: ie.Err}
			}
			return fmt.Errorf("import: %w (%d records written before this batch)", err, written)
		}
		written += int64(len(batch))
		batch, lines = batch[:0], lines[:0]
		if opts.Progress != nil {
			opts.Progress(written)
		}
		return nil
	}

	for {
		rec, err := in.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return written, fmt.Errorf("import: %w (%d records written before this batch)",
				err, written)
		}
		batch = append(batch, secrets.Entry{Name: rec.Name, Value: rec.Value})
		lines = append(lines, rec.Line)
		if len(batch) == opts.BatchSize {
			if err := flush(); err != nil {
				return written, err
			}
		}
	}
	return written, flush()
}
