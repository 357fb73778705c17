// Package rotation moves every stored secret to a keyring's current master
// key, and verifies that every row is readable before an old key is
// dropped.
//
// Rotate reads the table in keyset batches on id (no OFFSET), opens each
// value with whichever key of the ring sealed it, seals it again with the
// current key and writes the whole batch back in one statement. Each row
// of that statement is guarded by the value it held when it was read, so a
// Set that lands in between is never overwritten: that row is read again
// and rotated from its new value. A row that does not open is left as it
// is and reported by id and name, never by value. Rows already sealed with
// the current key are skipped, so a run that was stopped (a cancelled
// context, a lost connection, a crash) is finished by running it again.
//
// On a *pgxpool.Pool, reading and sealing run ahead of the writes, and two
// batches are written at once, each step on a connection of its own;
// Options.Workers splits a run further, also between processes.
//
// The package never logs; pass Options.Progress to follow a run.
package rotation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sqlsecrets/sqlsecrets/gen"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// DefaultBatchSize is the number of rows a batch holds when
// Options.BatchSize is 0.
const DefaultBatchSize = 500

// MaxBatchSize is the largest Options.BatchSize accepted.
const MaxBatchSize = 50_000

// MaxWorkers is the largest Options.Workers accepted.
const MaxWorkers = 64

// DefaultMaxFailures is how many failures a Result or Report lists when
// Options.MaxFailures is 0. Failed rows past it are counted, not listed.
const DefaultMaxFailures = 1000

// maxAttempts is how often one batch tries to swap a row that keeps being
// written concurrently before it reports the row as failed.
const maxAttempts = 5

// ErrChanged is the cause recorded for a row that was written, or held
// locked, by someone else on every attempt to rotate it. Running the
// rotation again picks it up.
var ErrChanged = errors.New("row kept changing or stayed locked during rotation; run again")

// Options tune Rotate and Verify. The zero value is ready to use.
type Options struct {
	// BatchSize is how many rows are read and written at once.
	// Default DefaultBatchSize.
	BatchSize int

	// DryRun makes Rotate open every row and count what it would rotate,
	// without writing anything. Verify ignores it.
	DryRun bool

	// MaxFailures caps the failures listed in the result; the counts stay
	// exact. Default DefaultMaxFailures.
	MaxFailures int

	// Progress, if set, is called after every batch, one call at a time:
	// from the goroutine that called Rotate or Verify, or, on a pool or
	// with Workers, from the goroutines that write.
	Progress func(Progress)

	// Workers, when above 0, splits the run between that many workers,
	// each on a connection of its own taken from db, which must then be a
	// *pgxpool.Pool with room for them. Workers claim chunks of 10,000
	// ids with PostgreSQL advisory locks, so runs in several processes, on
	// several machines, split the writing between them; their Rotated
	// counts add up to the rows that needed rotation. A chunk held by
	// another run is read again once that run lets go of it, so each run
	// still covers the whole table, even when another one dies.
	// Default 0: one keyset pass over db, which may also be a pgx.Tx. On
	// a *pgxpool.Pool, that pass reads and seals ahead on a connection of
	// its own while two batches at a time are written on two more.
	Workers int
}

// Progress is how far a run has got.
type Progress struct {
	Total int64 // rows in the table when the run started
	Done  int64 // rows looked at so far

	// For Rotate: rows rotated, skipped and failed so far. For Verify:
	// rows under the current key, under a previous key, and unreadable.
	Rotated, Skipped, Failed int64
}

// Failure is one row that could not be rotated or read. Err is
// secrets.ErrWrongKey, secrets.ErrIntegrity, secrets.ErrInvalidArgument
// (a name the table should not hold) or ErrChanged.
type Failure struct {
	ID   int64
	Name secrets.Name
	Err  error
}

// Result is what Rotate did. Rotated, Skipped and Failed add up to the rows
// it looked at in whole batches: when a run stops, a batch that it could
// not finish is counted by the run that finishes it. Failures lists at most Options.MaxFailures of the failed
// rows, by id.
type Result struct {
	Rotated  int64
	Skipped  int64
	Failed   int64
	Failures []Failure
}

func (o Options) withDefaults() (Options, error) {
	if o.BatchSize < 0 || o.BatchSize > MaxBatchSize {
		return o, fmt.Errorf("rotation: %w: batch size %d is not within 1 to %d",
			secrets.ErrInvalidArgument, o.BatchSize, MaxBatchSize)
	}
	if o.Workers < 0 || o.Workers > MaxWorkers {
		return o, fmt.Errorf("rotation: %w: %d workers is not within 0 to %d",
			secrets.ErrInvalidArgument, o.Workers, MaxWorkers)
	}
	if o.MaxFailures < 0 {
		return o, fmt.Errorf("rotation: %w: negative max failures %d",
			secrets.ErrInvalidArgument, o.MaxFailures)
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.MaxFailures == 0 {
		o.MaxFailures = DefaultMaxFailures
	}
	return o, nil
}

// RotateKey is the PHP original's entry point: it moves every row sealed
// with oldKey to newKey, batchSize rows at a time (0 for the default).
// Rows sealed with any other key fail and are left as they are.
func RotateKey(ctx context.Context, db secrets.DBTX, oldKey, newKey string,
	batchSize int) (Result, error) {
	ring, err := secrets.NewKeyring(newKey, oldKey)
	if err != nil {
		return Result{}, fmt.Errorf("rotate: %w", err)
	}
	return Rotate(ctx, db, ring, Options{BatchSize: batchSize})
}

// Rotate re-encrypts every row that ring can open to ring's current key.
// It returns what it did even when it returns an error; a cancelled
// context or a failed query is a *StoppedError that says how far it got,
// and running Rotate again continues from there.
func Rotate(ctx context.Context, db secrets.DBTX, ring *secrets.Keyring,
	opts Options) (Result, error) {
	r := &rotator{ring: ring, dryRun: opts.DryRun}
	t, err := walk(ctx, db, ring, opts, rotateClass, r)
	return Result{Rotated: t.a, Skipped: t.b, Failed: t.failed, Failures: t.failures}, err
}

type rotator struct {
	ring   *secrets.Keyring
	dryRun bool
}

// prepare seals, with the current key, the rows of b that need it.
func (r *rotator) prepare(b *batch) {
	b.swap = r.reseal(b.rows, &b.t)
	if r.dryRun {
		b.t.a += int64(len(b.swap.IDs))
		b.swap = gen.SwapValuesParams{}
	}
}

// write swaps in what prepare sealed, and reads again the rows that
// changed underneath, a few times at most.
func (r *rotator) write(ctx context.Context, db secrets.DBTX, b *batch) error {
	rows, swap := b.rows, b.swap
	for attempt := 1; len(swap.IDs) > 0; attempt++ {
		swap.FirstID, swap.LastID = slices.Min(swap.IDs), slices.Max(swap.IDs)
		done, err := gen.New(db).SwapValues(ctx, swap)
		if err != nil {
			return err
		}
		b.t.a += int64(len(done))
		missed := missing(swap.IDs, done)
		if len(missed) == 0 {
			return nil
		}
		if attempt == maxAttempts {
			for _, rw := range rows {
				if _, ok := missed[rw.id]; ok {
					b.t.fail(rw, ErrChanged)
				}
			}
			return nil
		}

		// Give a writer that holds the row a moment to finish.
		time.Sleep(time.Duration(attempt*attempt) * 10 * time.Millisecond)
		rows, err = readIDs(ctx, db, missed)
		if err != nil {
			return err
		}
		// A row deleted in between needs no rotation.
		b.t.b += int64(len(missed) - len(rows))
		swap = r.reseal(rows, &b.t)
	}
	return nil
}

// reseal opens each row and seals it with the current key. Rows already
// under it are counted as skipped, rows that do not open as failed.
func (r *rotator) reseal(rows []row, t *tally) gen.SwapValuesParams {
	var p gen.SwapValuesParams
	for _, rw := range rows {
		pt, current, err := r.ring.Open(rw.name, rw.value)
		if err == nil && current {
			t.b++
			continue
		}
		var sealed string
		if err == nil {
			sealed, err = r.ring.Seal(rw.name, pt)
		}
		clear(pt)
		if err != nil {
			t.fail(rw, err)
			continue
		}
		p.IDs = append(p.IDs, rw.id)
		p.OldValues = append(p.OldValues, rw.value)
		p.NewValues = append(p.NewValues, sealed)
	}
	return p
}

func missing(sent, done []int64) map[int64]struct{} {
	m := make(map[int64]struct{}, len(sent))
	for _, id := range sent {
		m[id] = struct{}{}
	}
	for _, id := range done {
		delete(m, id)
	}
	return m
}
