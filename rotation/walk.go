package rotation

import (
	"context"
	"fmt"
	"math"

	"github.com/sqlsecrets/sqlsecrets/gen"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// row is one row of the secrets table as rotation sees it.
type row struct {
	id    int64
	name  secrets.Name
	value string
}

// tally counts a run. a and b are rotated and skipped for Rotate, current
// and previous for Verify.
type tally struct {
	a, b, failed int64
	failures     []Failure
	max          int
}

func (t *tally) fail(rw row, err error) {
	t.failed++
	if len(t.failures) < t.max {
		t.failures = append(t.failures, Failure{ID: rw.id, Name: rw.name, Err: err})
	}
}

// walk reads the whole table in keyset batches on id and hands each batch
// to do. It stops between batches when ctx is done, with a *StoppedError,
// and reports progress after each batch.
func walk(ctx context.Context, db secrets.DBTX, ring *secrets.Keyring, opts Options,
	t *tally, do func(context.Context, []row) error) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	if ring == nil {
		return fmt.Errorf("rotation: %w: nil keyring", secrets.ErrInvalidArgument)
	}
	t.max = opts.MaxFailures

	// The cursor starts below every id: an adopted table may hold ids of
	// 0 or less. (Only a row with the smallest bigint itself is out of
	// reach; no identity column produces it.)
	var after int64 = math.MinInt64
	var done int64

	q := gen.New(db)
	total, err := q.CountSecrets(ctx)
	if err != nil {
		return stopped(after, done, fmt.Errorf("count rows: %w", err))
	}

	for {
		if err := ctx.Err(); err != nil {
			return stopped(after, done, err)
		}
		batch, err := q.ReadBatch(ctx, gen.ReadBatchParams{
			AfterID: after, BatchSize: int32(opts.BatchSize),
		})
		if err != nil {
			return stopped(after, done, err)
		}
		if len(batch) == 0 {
			return nil
		}

		rows := make([]row, len(batch))
		for i, b := range batch {
			rows[i] = row{b.ID, secrets.Name{Group: b.Group, Owner: b.OwnerID, Key: b.Key}, b.Value}
		}
		// A batch, once read, is finished even if ctx is cancelled, so that
		// a run stops between batches and its counts are exact.
		// The counts cover whole batches only, like StoppedError.Done: a
		// batch that fails takes its counts back out.
		saved := *t
		if err := do(context.WithoutCancel(ctx), rows); err != nil {
			*t = saved
			return stopped(after, done, err)
		}

		after = batch[len(batch)-1].ID
		done += int64(len(batch))
		if opts.Progress != nil {
			opts.Progress(Progress{
				Total: max(total, done), Done: done,
				Rotated: t.a, Skipped: t.b, Failed: t.failed,
			})
		}
	}
}

// StoppedError is the error of a Rotate or Verify that stopped before the
// end of the table: the context was cancelled, or a query failed. It says
// how far the run got; everything before that point is done, and running
// again continues from there.
type StoppedError struct {
	Done    int64 // rows looked at in whole batches
	AfterID int64 // the last id of the last whole batch; math.MinInt64 before the first
	Err     error // the cause, such as context.Canceled
}

// Error returns "stopped after N rows, at id X; run again to continue: cause".
func (e *StoppedError) Error() string {
	if e.Done == 0 {
		return fmt.Sprintf("stopped before the first batch; run again: %v", e.Err)
	}
	return fmt.Sprintf("stopped after %d rows, at id %d; run again to continue: %v",
		e.Done, e.AfterID, e.Err)
}

// Unwrap returns the cause.
func (e *StoppedError) Unwrap() error { return e.Err }

func stopped(after, done int64, err error) error {
	return &StoppedError{Done: done, AfterID: after, Err: err}
}

// readIDs reads the rows with the given ids again; deleted ones are absent.
func readIDs(ctx context.Context, db secrets.DBTX, ids map[int64]struct{}) ([]row, error) {
	list := make([]int64, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	got, err := gen.New(db).ReadByIDs(ctx, list)
	if err != nil {
		return nil, err
	}
	rows := make([]row, len(got))
	for i, b := range got {
		rows[i] = row{b.ID, secrets.Name{Group: b.Group, Owner: b.OwnerID, Key: b.Key}, b.Value}
	}
	return rows, nil
}
