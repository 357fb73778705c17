package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// aheadDB is a pool, so that a run reads ahead on it, that counts reads
// and lets a test step in before each read and each write.
type aheadDB struct {
	*pgxpool.Pool

	mu          sync.Mutex
	reads       int
	readsSeen   chan int // gets the number of reads after each one, if set
	beforeRead  func(n int) error
	beforeWrite func(n int, ids []int64) // n counts writes from 1
	failWrite   func(n int) error
	writes      int
}

var errInjected = errors.New("injected failure")

func (a *aheadDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	switch {
	case strings.Contains(sql, "name: ReadBatch"):
		a.mu.Lock()
		a.reads++
		n := a.reads
		a.mu.Unlock()
		if a.beforeRead != nil {
			if err := a.beforeRead(n); err != nil {
				return nil, err
			}
		}
		if a.readsSeen != nil {
			select {
			case a.readsSeen <- n:
			default:
			}
		}
	case strings.Contains(sql, "name: SwapValues"):
		a.mu.Lock()
		a.writes++
		n := a.writes
		a.mu.Unlock()
		if a.beforeWrite != nil {
			ids, _ := args[0].([]int64)
			a.beforeWrite(n, ids)
		}
		if a.failWrite != nil {
			if err := a.failWrite(n); err != nil {
				return nil, err
			}
		}
	}
	return a.Pool.Query(ctx, sql, args...)
}

// awaitReads waits until n reads have started, and fails t if that takes
// 10 seconds: then the run did not read ahead.
func (a *aheadDB) awaitReads(t *testing.T, n int) bool {
	deadline := time.After(10 * time.Second)
	for {
		select {
		case reads := <-a.readsSeen:
			if reads >= n {
				return true
			}
		case <-deadline:
			t.Errorf("read %d was not started while the first batch was written", n)
			return false
		}
	}
}

// On a pool, a run without workers reads and seals the next batch while
// the current one is written: the first write waits here until the
// second batch has been read.
func TestRotateReadsAheadOnAPool(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	want := seed(t, pool, ring(t, keyA), 10)
	db := &aheadDB{Pool: pool, readsSeen: make(chan int, 16)}
	db.beforeWrite = func(n int, _ []int64) {
		if n == 1 {
			db.awaitReads(t, 2)
		}
	}

	res, err := rotation.Rotate(context.Background(), db, ring(t, keyB, keyA),
		rotation.Options{BatchSize: 3})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if diff := cmp.Diff(rotation.Result{Rotated: 10}, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if !cmp.Equal(want, readAll(t, pool, ring(t, keyB))) {
		t.Errorf("values differ after a rotation that read ahead")
	}
}

// A row written after its batch was read ahead, before that batch is
// written, keeps the newer value, which is rotated in turn.
func TestRotateAheadKeepsWriteAfterRead(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	want := seed(t, pool, ring(t, keyA), 6)
	// token.3 has no owner and is the first row of the second batch, id 4.
	name := secrets.Name{Group: "users", Key: "token.3"}
	db := &aheadDB{Pool: pool}
	var once sync.Once
	db.beforeWrite = func(_ int, ids []int64) {
		if !slices.Contains(ids, 4) {
			return
		}
		once.Do(func() { // before the first write of the batch that holds it
			err := secrets.SetMany(ctx, pool, ring(t, keyA), []secrets.Entry{{Name: name, Value: "newer"}})
			if err != nil {
				t.Errorf("concurrent write: %v", err)
			}
		})
	}
	want[name.String()] = "newer"

	res, err := rotation.Rotate(ctx, db, ring(t, keyB, keyA), rotation.Options{BatchSize: 3})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if diff := cmp.Diff(rotation.Result{Rotated: 6}, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if !cmp.Equal(want, readAll(t, pool, ring(t, keyB))) {
		t.Errorf("the write that landed after the read ahead was lost")
	}
}

// A run that stops drops the batches it read ahead unwritten: its counts
// and the table agree, and a rerun finishes the rest.
func TestRotateAheadStops(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(db *aheadDB, cancel context.CancelFunc)
		cause error
		least int64 // rows done at least, and at most
		most  int64
	}{{
		name: "cancelled after the first batch",
		setup: func(db *aheadDB, cancel context.CancelFunc) {
			db.beforeWrite = func(n int, _ []int64) {
				if n == 2 {
					cancel() // while the second batch is written
				}
			}
		},
		// The first two batches, and a third that a writer may have begun
		// before the cancel.
		cause: context.Canceled, least: 4, most: 6,
	}, {
		name: "third read fails",
		setup: func(db *aheadDB, _ context.CancelFunc) {
			db.beforeRead = func(n int) error {
				if n == 3 {
					return errInjected
				}
				return nil
			}
		},
		cause: errInjected, least: 4, most: 4,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			_, pool := pgtest.Migrated(t)
			want := seed(t, pool, ring(t, keyA), 10)
			r := ring(t, keyB, keyA)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			db := &aheadDB{Pool: pool}
			tc.setup(db, cancel)

			res, err := rotation.Rotate(ctx, db, r, rotation.Options{BatchSize: 2})
			var stop *rotation.StoppedError
			if !errors.As(err, &stop) || !errors.Is(err, tc.cause) {
				t.Fatalf("got err %v, want a StoppedError for %v", err, tc.cause)
			}
			done := res.Rotated
			if done < tc.least || done > tc.most || stop.Done != done || stop.AfterID != done ||
				!strings.Contains(err.Error(), fmt.Sprintf("stopped after %d rows, at id %d", done, done)) {
				t.Errorf("got %+v, %q; want %d to %d rows rotated in whole batches, and the error saying so",
					res, err, tc.least, tc.most)
			}
			rep, err := rotation.Verify(context.Background(), pool, r, rotation.Options{})
			if err != nil || rep.Current != done || rep.Previous != 10-done {
				t.Errorf("verify: %+v, %v; want the table to agree with the counts", rep, err)
			}

			res, err = rotation.Rotate(context.Background(), pool, r, rotation.Options{BatchSize: 2})
			wantRes := rotation.Result{Rotated: 10 - done, Skipped: done}
			if err != nil || !cmp.Equal(wantRes, res) {
				t.Fatalf("rerun: got %+v, %v; want %+v", res, err, wantRes)
			}
			if !cmp.Equal(want, readAll(t, pool, r)) {
				t.Errorf("values differ after a stopped and resumed rotation")
			}
		})
	}
}

// When the first batch fails after the second, written alongside it, is
// done, the run says it stopped before any id, counts the batches done
// past the first, and a rerun finishes the rest.
func TestRotateAheadFirstWriteFails(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	want := seed(t, pool, ring(t, keyA), 10)
	r := ring(t, keyB, keyA)
	db := &aheadDB{Pool: pool, readsSeen: make(chan int, 16)}
	secondDone := make(chan struct{})
	db.failWrite = func(n int) error {
		if n != 1 {
			return nil
		}
		// Fail the first write only once the second one has been written.
		select {
		case <-secondDone:
		case <-time.After(10 * time.Second):
			t.Errorf("the second batch was not written alongside the first")
		}
		return errInjected
	}
	var once sync.Once
	res, err := rotation.Rotate(context.Background(), db, r, rotation.Options{
		BatchSize: 2,
		Progress:  func(rotation.Progress) { once.Do(func() { close(secondDone) }) },
	})
	var stop *rotation.StoppedError
	if !errors.As(err, &stop) || !errors.Is(err, errInjected) {
		t.Fatalf("got err %v, want a StoppedError for the injected failure", err)
	}
	done := res.Rotated
	// The other writer goes on until the failure is in: 1 to 4 batches.
	if done < 2 || done > 8 || done%2 != 0 || stop.Done != done || stop.AfterID != math.MinInt64 {
		t.Errorf("got %+v, done %d after id %d; want whole batches past the first, before any id",
			res, stop.Done, stop.AfterID)
	}

	res, err = rotation.Rotate(context.Background(), pool, r, rotation.Options{BatchSize: 2})
	if err != nil || res.Rotated != 10-done || res.Skipped != done {
		t.Fatalf("rerun: got %+v, %v; want the rest rotated and %d skipped", res, err, done)
	}
	if !cmp.Equal(want, readAll(t, pool, r)) {
		t.Errorf("values differ after a failed batch and a rerun")
	}
}
