// Package importer loads secrets from JSON Lines: one object per line,
//
//	{"group": "users", "owner": 42, "key": "api_token", "value": ...}
//
// where group defaults to "global", owner may be null or absent for a
// secret with no owner, and value is any JSON, null included.
//
// Import writes the records in batches, each batch in one statement (a
// COPY, or an upsert where secrets exist), so a batch lands whole or not
// at all. A bad line stops the import before its batch is written; the
// error names the line, never its content.
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

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// DefaultBatchSize is the number of records written per statement when
// Options.BatchSize is 0.
const DefaultBatchSize = 2000

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

// jsonSpace is the white space that JSON allows around a value.
const jsonSpace = " \t\r\n"

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
		// Only JSON's own white space: a form feed or a no-break space
		// around the object makes the line bad, as a JSON parser would.
		text = bytes.Trim(text, jsonSpace)
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
// it wrote. A record whose name comes again later in the same batch is
// overwritten by the later one.
//
// It reads r, parses and seals on a goroutine of its own, ahead of the
// writes, and writes and calls Progress on the caller's. Each batch is one
// statement: a COPY while no secret of the batch exists, which is how an
// import into an empty table runs, and otherwise the upsert of
// secrets.SetMany; after the first batch that meets an existing secret,
// every later batch is an upsert. With db a pgx.Tx, the COPY runs in a
// savepoint; on a connection inside a transaction begun with SQL, where a
// failed COPY would abort that transaction, every batch is an upsert.
//
// When ctx is cancelled it stops before the next batch: a batch that has
// started is written whole. On a bad line it stops, having written every
// batch before the one that holds the line and nothing of that one; the
// error names the line and says how many records were written.
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

	w := newWriter(db)
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
		if err := w.write(context.WithoutCancel(ctx), b.batch); err != nil {
			return written, fmt.Errorf("import: %w (%d records written before this batch)",
				err, written)
		}
		written += int64(b.batch.records)
		if opts.Progress != nil {
			opts.Progress(written)
		}
	}
	return written, nil
}

// prepared is one batch, sealed, or the error that ends the input.
type prepared struct {
	batch *batch
	err   error
}

// prepare reads records from in, seals them in batches of size and sends
// them, in order, until the input ends, a line is bad, or stop closes.
// When a line is bad, the error is that of the first bad line: a record
// before it in the batch that cannot be sealed comes first.
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
	var recs []Record
	for {
		rec, err := in.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if _, serr := sealBatch(ring, recs); serr != nil {
				err = serr
			}
			send(prepared{err: err})
			return
		}
		if recs == nil {
			recs = make([]Record, 0, min(size, 4096))
		}
		recs = append(recs, rec)
		if len(recs) == size {
			b, err := sealBatch(ring, recs)
			if !send(prepared{batch: b, err: err}) || err != nil {
				return
			}
			recs = nil
		}
	}
	if len(recs) > 0 {
		b, err := sealBatch(ring, recs)
		send(prepared{batch: b, err: err})
	}
}
