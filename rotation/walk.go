package rotation

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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
// and previous for Verify; legacy counts Verify's legacy rows.
type tally struct {
	a, b, failed int64
	legacy       int64
	failures     []Failure
	max          int
}

func (t *tally) fail(rw row, err error) {
	t.failed++
	if len(t.failures) < t.max {
		t.failures = append(t.failures, Failure{ID: rw.id, Name: rw.name, Err: err})
	}
}

// add adds the counts of o to t.
func (t *tally) add(o tally) {
	t.a, t.b, t.failed, t.legacy = t.a+o.a, t.b+o.b, t.failed+o.failed, t.legacy+o.legacy
	for _, f := range o.failures {
		if len(t.failures) < t.max {
			t.failures = append(t.failures, f)
		}
	}
}

// batch is one batch of rows on its way through a pass.
type batch struct {
	rows []row
	last int64 // the id of the last row read
	seq  int   // the batch's place in a walkAhead, from 0

	// swap is what prepare leaves for write to swap in.
	swap gen.SwapValuesParams

	t tally
}

// pass is what a Rotate or Verify does with each batch, in two steps:
// prepare needs no database (it opens and seals), so it may run on
// another goroutine, ahead of write, which does the rest through db.
type pass interface {
	prepare(b *batch)
	write(ctx context.Context, db secrets.DBTX, b *batch) error
}

// Chunks of ids that workers claim. Each is a range of chunkWidth ids,
// numbered from id 0, so that every process cuts the table the same way.
const chunkWidth = 10_000

// Advisory lock classes: rotations and verifications claim chunks apart,
// so that a Verify never skips what a Rotate holds.
const (
	rotateClass = 0x73725254 // "srRT"
	verifyClass = 0x73725646 // "srVF"
)

// run is one Rotate or Verify: the sum of its batches and its progress.
type run struct {
	opts  Options
	class int32
	pass  pass

	mu    sync.Mutex // guards sum, done and panicked, and serializes Progress calls
	sum   tally
	done  int64
	total int64

	// panicked is the first panic on a goroutine of the run, such as one
	// of a Progress callback, for rethrow to raise again.
	panicked any
}

// catch is deferred by every goroutine that a run starts. It recovers a
// panic, keeps it for rethrow and calls stop, so that the run winds down.
func (r *run) catch(stop func()) {
	p := recover()
	if p == nil {
		return
	}
	r.mu.Lock()
	if r.panicked == nil {
		r.panicked = p
	}
	r.mu.Unlock()
	stop()
}

// rethrow raises again, on the caller's goroutine, where the caller can
// recover it, a panic that catch kept.
func (r *run) rethrow() {
	r.mu.Lock()
	p := r.panicked
	r.mu.Unlock()
	if p != nil {
		panic(p)
	}
}

// errPanicked stops the goroutines of a run after one of them panicked.
var errPanicked = errors.New("rotation: a goroutine of the run panicked")

// walk reads the whole table in batches and hands each to do: in keyset
// order on id over db, or, with Options.Workers, by workers that claim
// chunks of ids. It stops between batches when ctx is done, with a
// *StoppedError, and reports progress after each batch.
func walk(ctx context.Context, db secrets.DBTX, ring *secrets.Keyring, opts Options,
	class int32, p pass) (tally, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return tally{}, err
	}
	if ring == nil {
		return tally{}, fmt.Errorf("rotation: %w: nil keyring", secrets.ErrInvalidArgument)
	}
	r := &run{opts: opts, class: class, pass: p, sum: tally{max: opts.MaxFailures}}

	total, err := gen.New(db).CountSecrets(ctx)
	if err != nil {
		return r.sum, r.stopped(math.MinInt64, fmt.Errorf("count rows: %w", err))
	}
	r.total = total

	if opts.Workers == 0 {
		// From the smallest id on: an adopted table may hold ids of 0 or
		// less.
		walk := r.walkRange
		if _, ok := db.(acquirer); ok {
			walk = r.walkAhead
		}
		after, err := walk(ctx, db, math.MinInt64, math.MaxInt64)
		if err != nil {
			return r.sum, r.stopped(after, err)
		}
		return r.sum, nil
	}
	return r.sum, r.workers(ctx, db)
}

// walkRange walks the ids from first up to and including last, one batch
// after the other, and returns the last id of the last whole batch
// (math.MinInt64 before the first).
func (r *run) walkRange(ctx context.Context, db secrets.DBTX, first, last int64) (int64, error) {
	after := int64(math.MinInt64)
	err := r.eachBatch(ctx, db, first, last, func(b *batch) error {
		if err := r.write(ctx, db, b); err != nil {
			return err
		}
		after = b.last
		return nil
	})
	return after, err
}

// eachBatch reads the ids from first up to and including last in
// batches, in id order, prepares each and hands it to fn, until the range
// ends, ctx is done or fn fails.
func (r *run) eachBatch(ctx context.Context, db secrets.DBTX, first, last int64,
	fn func(*batch) error) error {
	for from, seq := first, 0; ; seq++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := r.read(ctx, db, from, last)
		if err != nil || b == nil {
			return err
		}
		b.seq = seq
		r.pass.prepare(b)
		if err := fn(b); err != nil {
			return err
		}
		if b.last == last {
			return nil // and from = last + 1 would overflow at math.MaxInt64
		}
		from = b.last + 1
	}
}

// aheadWriters is how many batches a walkAhead writes at once.
const aheadWriters = 2

// walkAhead is walkRange with the reading and the crypto done on a
// goroutine of its own, ahead of the writes, and aheadWriters batches
// written at once. Each step takes a connection of db's pool for itself
// and holds none while it waits for another step. It returns the last id
// of the batches written up to the first one that was not.
func (r *run) walkAhead(ctx context.Context, db secrets.DBTX, first, last int64) (int64, error) {
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	ready := make(chan *batch, aheadWriters)
	var readErr error
	var reader sync.WaitGroup
	reader.Go(func() {
		defer close(ready)
		defer r.catch(stopReading)
		readErr = r.readAhead(readCtx, db, first, last, ready)
	})

	w := &aheadWrites{after: math.MinInt64, written: map[int]int64{}}
	var writers sync.WaitGroup
	for range aheadWriters {
		writers.Go(func() {
			defer r.catch(func() {
				w.done(nil, errPanicked) // the other writer drops the rest
				stopReading()
			})
			for b := range ready {
				if !w.goOn(ctx) {
					stopReading()
					continue // dropped unwritten: a rerun reads it again
				}
				err := r.write(ctx, db, b)
				w.done(b, err)
				if err != nil {
					stopReading()
				}
			}
		})
	}
	writers.Wait()
	reader.Wait()
	r.rethrow()

	switch {
	case w.err != nil:
		return w.after, w.err
	case readErr != nil:
		return w.after, readErr
	case w.dropped:
		return w.after, ctx.Err() // a cancel that landed after the last read
	}
	return w.after, nil
}

// aheadWrites tracks the batches of a walkAhead, numbered in id order as
// read, that its writers have finished.
type aheadWrites struct {
	mu      sync.Mutex
	written map[int]int64 // the last id of each batch written out of order
	next    int           // the number of the first batch not yet written
	after   int64         // the last id of batch next-1
	err     error         // the first write that failed
	dropped bool          // a batch was left unwritten
}

// goOn reports whether the next batch is to be written: no write failed
// and ctx is not done. Once it says no, it says no to every later batch.
func (w *aheadWrites) goOn(ctx context.Context) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil || ctx.Err() != nil {
		w.dropped = true
	}
	return !w.dropped
}

func (w *aheadWrites) done(b *batch, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if w.err == nil {
			w.err = err
		}
		return
	}
	w.written[b.seq] = b.last
	for {
		last, ok := w.written[w.next]
		if !ok {
			return
		}
		delete(w.written, w.next)
		w.next++
		w.after = last
	}
}

// readAhead reads and prepares the batches of walkAhead and sends them to
// ready, until the range ends or ctx is done.
func (r *run) readAhead(ctx context.Context, db secrets.DBTX, first, last int64,
	ready chan<- *batch) error {
	return r.eachBatch(ctx, db, first, last, func(b *batch) error {
		select {
		case ready <- b:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// read reads the batch that starts at id from, or returns nil when no row
// is left up to last.
func (r *run) read(ctx context.Context, db secrets.DBTX, from, last int64) (*batch, error) {
	got, err := gen.New(db).ReadBatch(ctx, gen.ReadBatchParams{
		FromID: from, LastID: last, BatchSize: int32(r.opts.BatchSize),
	})
	if err != nil || len(got) == 0 {
		return nil, err
	}
	b := &batch{rows: make([]row, len(got)), last: got[len(got)-1].ID,
		t: tally{max: r.opts.MaxFailures}}
	for i, g := range got {
		b.rows[i] = row{g.ID, secrets.Name{Group: g.Group, Owner: g.OwnerID, Key: g.Key}, g.Value}
	}
	return b, nil
}

// write finishes a prepared batch and adds it to the run. A batch, once
// read, is written even if ctx is cancelled, so that a run stops between
// batches. Its counts join the run's only when the whole batch is done,
// like StoppedError.Done.
func (r *run) write(ctx context.Context, db secrets.DBTX, b *batch) error {
	if err := r.pass.write(context.WithoutCancel(ctx), db, b); err != nil {
		return err
	}
	r.finish(b.t, len(b.rows))
	return nil
}

// finish adds a whole batch to the run and reports progress.
func (r *run) finish(t tally, rows int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sum.add(t)
	r.done += int64(rows)
	if r.opts.Progress != nil {
		r.opts.Progress(Progress{
			Total: max(r.total, r.done), Done: r.done,
			Rotated: r.sum.a, Skipped: r.sum.b, Failed: r.sum.failed,
		})
	}
}

func (r *run) stopped(after int64, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &StoppedError{Done: r.done, AfterID: after, Err: err}
}

// acquirer is what workers need of the database: a pool to take
// connections of their own from.
type acquirer interface {
	Acquire(ctx context.Context) (*pgxpool.Conn, error)
}

// workers runs Options.Workers workers, each on a connection of its own,
// that claim chunks of ids in turn with a session advisory lock, so that
// workers of other processes running a rotation at the same time take
// other chunks. A chunk that another worker holds is put off, and walked
// at the end once its lock is free: rows that worker finished are then
// skipped, and rows it could not finish (it failed, or its process died)
// are done here, so every run covers the whole table.
func (r *run) workers(ctx context.Context, db secrets.DBTX) error {
	pool, ok := db.(acquirer)
	if !ok {
		return fmt.Errorf("rotation: %w: Workers needs a *pgxpool.Pool, not a %T",
			secrets.ErrInvalidArgument, db)
	}
	chunks := &chunker{next: floorDiv(math.MinInt64, chunkWidth)}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for range r.opts.Workers {
		wg.Go(func() {
			defer r.catch(func() { cancel(errPanicked) })
			if err := r.worker(ctx, pool, chunks); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	r.rethrow()
	if err := context.Cause(ctx); err != nil {
		return r.stopped(math.MinInt64, err)
	}
	return nil
}

// chunker hands out, in order, the chunks that hold at least one row.
type chunker struct {
	mu   sync.Mutex
	next int64 // the first chunk not yet handed out
	done bool
}

// take returns the next chunk that holds a row, looked up through q, or
// false when no row is left beyond the chunks handed out.
func (c *chunker) take(ctx context.Context, q *gen.Queries) (int64, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return 0, false, nil
	}
	id, err := q.NextID(ctx, chunkStart(c.next))
	if errors.Is(err, pgx.ErrNoRows) {
		c.done = true
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	chunk := floorDiv(id, chunkWidth)
	c.next = chunk + 1
	c.done = chunkEnd(chunk) == math.MaxInt64
	return chunk, true, nil
}

// chunkStart and chunkEnd are the first and last ids of chunk c.
func chunkStart(c int64) int64 {
	if c <= math.MinInt64/chunkWidth-1 {
		return math.MinInt64
	}
	return c * chunkWidth
}

func chunkEnd(c int64) int64 {
	if c >= math.MaxInt64/chunkWidth {
		return math.MaxInt64
	}
	return c*chunkWidth + chunkWidth - 1
}

// worker claims and walks chunks until none is left, then walks the ones
// it put off.
func (r *run) worker(ctx context.Context, pool acquirer, chunks *chunker) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	q := gen.New(conn)

	var later []int64
	for {
		c, ok, err := chunks.take(ctx, q)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		mine, err := q.ClaimChunk(ctx, gen.ClaimChunkParams{Class: r.class, Chunk: lockKey(c)})
		if err != nil {
			return err
		}
		if !mine {
			later = append(later, c) // another process's worker has it
			continue
		}
		if err := r.walkChunk(ctx, conn, c); err != nil {
			return err
		}
	}

	for _, c := range later {
		err := q.WaitChunk(ctx, gen.WaitChunkParams{Class: r.class, Chunk: lockKey(c)})
		if err != nil {
			return err
		}
		if err := r.walkChunk(ctx, conn, c); err != nil {
			return err
		}
	}
	return nil
}

// walkChunk walks chunk c, whose lock conn holds, and releases the lock.
func (r *run) walkChunk(ctx context.Context, conn *pgxpool.Conn, c int64) error {
	defer func() {
		// A failed unlock ends with the connection's session at the latest.
		_ = gen.New(conn).ReleaseChunk(context.WithoutCancel(ctx), gen.ReleaseChunkParams{
			Class: r.class, Chunk: lockKey(c),
		})
	}()
	_, err := r.walkRange(ctx, conn, chunkStart(c), chunkEnd(c))
	return err
}

// lockKey is the advisory lock number of chunk c. Numbers wrap at 2^32
// chunks, far beyond any real table; two chunks that share a number only
// take turns.
func lockKey(c int64) int32 { return int32(c) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// StoppedError is the error of a Rotate or Verify that stopped before the
// end of the table: the context was cancelled, or a query failed. It says
// how far the run got; everything before that point is done, and running
// again continues from there.
type StoppedError struct {
	Done int64 // rows looked at in whole batches

	// AfterID is, for a run without workers, the id up to which every
	// batch is done (on a pool, a later batch may be done too);
	// math.MinInt64 before that, and with workers.
	AfterID int64

	Err error // the cause, such as context.Canceled
}

// Error returns "stopped after N rows, at id X; run again to continue: cause".
func (e *StoppedError) Error() string {
	switch {
	case e.Done == 0:
		return fmt.Sprintf("stopped before the first batch; run again: %v", e.Err)
	case e.AfterID == math.MinInt64:
		return fmt.Sprintf("stopped after %d rows; run again to continue: %v", e.Done, e.Err)
	}
	return fmt.Sprintf("stopped after %d rows, at id %d; run again to continue: %v",
		e.Done, e.AfterID, e.Err)
}

// Unwrap returns the cause.
func (e *StoppedError) Unwrap() error { return e.Err }

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
