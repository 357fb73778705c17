package rotation_test

// Attack tests: concurrency (run with -race) and failures.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

func TestAttackConcurrentSetGetDelete(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	r := ring(t, keyA)
	base := secrets.New(r)
	shared := []string{"s0", "s1", "s2", "s3"}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			own := base.Model("users", int64(w))
			for i := range 150 {
				var s secrets.Store
				switch w % 3 {
				case 0:
					s = base
				case 1:
					s = base.Owner(0)
				default:
					s = base.Owner(1)
				}
				key := shared[rng.IntN(len(shared))]
				switch rng.IntN(3) {
				case 0:
					if err := s.Set(ctx, pool, key, fmt.Sprintf("w%d-%d", w, i)); err != nil {
						t.Errorf("Set: %v", err)
						return
					}
				case 1:
					if _, err := secrets.GetAs[string](ctx, s, pool, key); err != nil &&
						!errors.Is(err, secrets.ErrNotFound) {
						t.Errorf("Get shared: %v", err)
						return
					}
				case 2:
					if _, err := s.Delete(ctx, pool, key); err != nil {
						t.Errorf("Delete: %v", err)
						return
					}
				}
				want := fmt.Sprintf("own %d %d", w, i)
				if err := own.Set(ctx, pool, "mine", want); err != nil {
					t.Errorf("Set own: %v", err)
					return
				}
				if got, err := secrets.GetAs[string](ctx, own, pool, "mine"); err != nil || got != want {
					t.Errorf("worker %d read back another value (%v)", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	var dup int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT key, "group", owner_id FROM secrets
		GROUP BY 1,2,3 HAVING count(*) > 1) d`).Scan(&dup)
	if err != nil || dup != 0 {
		t.Errorf("%d duplicated scope keys (%v)", dup, err)
	}
}

func TestAttackManyWritersOneGlobalSecret(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	r := ring(t, keyA)
	const n = 40
	for round := range 5 {
		key := fmt.Sprintf("smtp-%d", round)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range n {
			wg.Go(func() {
				<-start
				var err error
				if w%2 == 0 {
					err = secrets.New(r).Set(ctx, pool, key, fmt.Sprintf("writer %d", w))
				} else {
					err = secrets.SetMany(ctx, pool, r, []secrets.Entry{
						{Name: secrets.Name{Group: "global", Key: key}, Value: fmt.Sprintf("writer %d", w)},
					})
				}
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
				}
			})
		}
		close(start)
		wg.Wait()
		var rows int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM secrets WHERE key = $1`, key).
			Scan(&rows); err != nil || rows != 1 {
			t.Fatalf("round %d: %d rows for one global secret (%v)", round, rows, err)
		}
		got, err := secrets.GetAs[string](ctx, secrets.New(r), pool, key)
		if err != nil || !strings.HasPrefix(got, "writer ") {
			t.Errorf("round %d: read back %v", round, err)
		}
	}
}

// Writers on the new ring during a whole rotation: afterwards every row is
// under the new key and holds the last write.
func TestAttackWritersDuringRotation(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	old := ring(t, keyA)
	seed(t, pool, old, 300)
	newRing := ring(t, keyB, keyA)

	var last sync.Map // name -> last value written
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	for w := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Each worker owns the names i ≡ w (mod 6), so "last" is well defined.
				k := rng.IntN(50)*6 + w
				name := secrets.Name{Group: "users", Key: fmt.Sprintf("token.%d", k)}
				if k%3 != 0 {
					o := int64(k % 5)
					name.Owner = &o
				}
				s := secrets.New(newRing).Group("users").NoOwner()
				if name.Owner != nil {
					s = s.Owner(*name.Owner)
				}
				v := fmt.Sprintf("w%d-%d", w, i)
				if err := s.Set(ctx, pool, name.Key, v); err != nil {
					t.Errorf("writer: %v", err)
					return
				}
				last.Store(name.String(), v)
				writes.Add(1)
			}
		})
	}
	res, err := rotation.Rotate(ctx, pool, newRing, rotation.Options{BatchSize: 7})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	t.Logf("rotation %+v with %d concurrent writes", res, writes.Load())
	if res.Failed != 0 {
		t.Errorf("rotation failed %d rows: %+v", res.Failed, res.Failures)
	}
	only := ring(t, keyB)
	rep, err := rotation.Verify(ctx, pool, only, rotation.Options{})
	if err != nil || rep.Current != 300 || rep.Total != 300 {
		t.Errorf("verify with the new key only: %+v, %v", rep, err)
	}
	got := readAll(t, pool, only)
	last.Range(func(k, v any) bool {
		if got[k.(string)] != v.(string) {
			t.Errorf("%s: the last write was lost", k)
		}
		return true
	})
}

func TestAttackTwoRotationsAtOnce(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	want := seed(t, pool, ring(t, keyA), 400)
	r := ring(t, keyB, keyA)
	var wg sync.WaitGroup
	results := make([]rotation.Result, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Go(func() {
			results[i], errs[i] = rotation.Rotate(ctx, pool, r, rotation.Options{BatchSize: 5 + i*3})
		})
	}
	wg.Wait()
	var rotated int64
	for i := range 3 {
		if errs[i] != nil {
			t.Errorf("rotation %d: %v", i, errs[i])
		}
		if results[i].Failed != 0 {
			t.Errorf("rotation %d failed rows: %+v", i, results[i].Failures)
		}
		rotated += results[i].Rotated
	}
	if rotated != 400 {
		t.Errorf("three rotations at once rotated %d rows in total; want 400 (each row once)", rotated)
	}
	if got := readAll(t, pool, ring(t, keyB)); len(got) != len(want) {
		t.Errorf("%d rows read back of %d", len(got), len(want))
	} else {
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s differs after concurrent rotations", k)
			}
		}
	}
}

// A pool of one connection shared by the rotation and application reads.
func TestAttackRotationWithOneConnectionPool(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seed(t, pool, ring(t, keyA), 200)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	one, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	r := ring(t, keyB, keyA)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			s := secrets.New(r).Group("users")
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("token.%d", (i*3+w*3)%200/3*3)
				if _, err := secrets.GetAs[string](ctx, s, one, key); err != nil {
					t.Errorf("reader: %v", err)
					return
				}
				if i%5 == 0 {
					if err := s.Set(ctx, one, key, fmt.Sprintf("value-%s",
						strings.TrimPrefix(key, "token."))); err != nil {
						t.Errorf("writer: %v", err)
						return
					}
				}
			}
		})
	}
	res, err := rotation.Rotate(ctx, one, r, rotation.Options{BatchSize: 9})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("rotation on a 1-connection pool: %v (deadlock if context deadline)", err)
	}
	if res.Rotated+res.Skipped != 200 || res.Failed != 0 {
		t.Errorf("result %+v", res)
	}
}

// Two SetMany calls over the same names in opposite orders, and SetMany
// against a rotation: does PostgreSQL report a deadlock to the caller?
func TestAttackSetManyOppositeOrdersDeadlock(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	r := ring(t, keyA)
	var names []secrets.Name
	for i := range 200 {
		names = append(names, secrets.Name{Group: "g", Key: fmt.Sprintf("k%03d", i)})
	}
	entries := func(rev bool, tag string) []secrets.Entry {
		out := make([]secrets.Entry, len(names))
		for i, n := range names {
			j := i
			if rev {
				j = len(names) - 1 - i
			}
			out[j] = secrets.Entry{Name: n, Value: tag}
		}
		return out
	}
	if err := secrets.SetMany(ctx, pool, r, entries(false, "init")); err != nil {
		t.Fatal(err)
	}
	var deadlocks atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 5 {
				err := secrets.SetMany(ctx, pool, r, entries(w%2 == 1, fmt.Sprintf("w%d-%d", w, i)))
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Code == "40P01" {
					deadlocks.Add(1)
				} else if err != nil {
					t.Errorf("SetMany: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if n := deadlocks.Load(); n > 0 {
		t.Errorf("%d of 20 SetMany calls failed with a deadlock (40P01): rows are locked in caller order", n)
	}
}

// SetMany in descending id order against a rotation that swaps whole batches.
func TestAttackSetManyAgainstRotationDeadlock(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	old := ring(t, keyA)
	var names []secrets.Name
	for i := range 300 {
		names = append(names, secrets.Name{Group: "g", Key: fmt.Sprintf("k%03d", i)})
	}
	all := func(rev bool, r *secrets.Keyring, tag string) error {
		out := make([]secrets.Entry, 0, len(names))
		for i := range names {
			j := i
			if rev {
				j = len(names) - 1 - i
			}
			out = append(out, secrets.Entry{Name: names[j], Value: tag})
		}
		return secrets.SetMany(ctx, pool, r, out)
	}
	newRing := ring(t, keyB, keyA)
	var deadlocks atomic.Int64
	for round := range 6 {
		if err := all(false, old, "init"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var rotErr error
		wg.Go(func() {
			_, rotErr = rotation.Rotate(ctx, pool, newRing, rotation.Options{BatchSize: 300})
		})
		wg.Go(func() {
			err := all(true, newRing, fmt.Sprintf("r%d", round))
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "40P01" {
				deadlocks.Add(1)
			}
		})
		wg.Wait()
		var pgErr *pgconn.PgError
		if errors.As(rotErr, &pgErr) && pgErr.Code == "40P01" {
			deadlocks.Add(1)
		}
	}
	if n := deadlocks.Load(); n > 0 {
		t.Errorf("%d deadlocks (40P01) between rotation and SetMany in 6 rounds", n)
	}
}

// Kill the rotation's connection in the middle of its second batch write,
// made slow by a trigger; rerun; nothing lost, duplicated or unreadable.
func TestAttackKillRotationMidStatement(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	ctx := context.Background()
	want := seed(t, pool, ring(t, keyA), 20)
	r := ring(t, keyB, keyA)
	_, err := pool.Exec(ctx, `
		CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.id = 6 THEN PERFORM pg_sleep(2); END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER slow_row BEFORE UPDATE ON secrets FOR EACH ROW EXECUTE FUNCTION slow_row()`)
	if err != nil {
		t.Fatal(err)
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pid := conn.PgConn().PID()
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for range 500 {
			var sleeping bool
			pool.QueryRow(ctx, `SELECT wait_event = 'PgSleep' FROM pg_stat_activity WHERE pid = $1`,
				pid).Scan(&sleeping)
			if sleeping {
				pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	res, err := rotation.Rotate(ctx, conn, r, rotation.Options{BatchSize: 4})
	<-killed
	var stop *rotation.StoppedError
	if !errors.As(err, &stop) || stop.Done != 4 || res.Rotated != 4 {
		t.Errorf("killed mid-statement: %+v, %v; want a StoppedError after 4 rows", res, err)
	}
	if _, err := pool.Exec(ctx, "DROP TRIGGER slow_row ON secrets"); err != nil {
		t.Fatal(err)
	}
	res, err = rotation.Rotate(ctx, pool, r, rotation.Options{BatchSize: 4})
	if err != nil || res.Rotated != 16 || res.Skipped != 4 || res.Failed != 0 {
		t.Fatalf("rerun: %+v, %v; want 16 rotated, 4 skipped", res, err)
	}
	got := readAll(t, pool, ring(t, keyB))
	if len(got) != len(want) {
		t.Errorf("%d rows after the kill, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s differs after a killed rotation", k)
		}
	}
}

// A failure before the first batch (here: a cancelled context or a dead
// connection at the count) is documented as a *StoppedError.
func TestAttackEarlyFailureIsStoppedError(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	ctx := context.Background()
	seed(t, pool, ring(t, keyA), 3)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := rotation.Rotate(cctx, pool, ring(t, keyB, keyA), rotation.Options{})
	var stop *rotation.StoppedError
	if !errors.As(err, &stop) {
		t.Errorf("cancelled before start: %v is not a *StoppedError", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	pool.Exec(ctx, "SELECT pg_terminate_backend($1)", conn.PgConn().PID())
	_, err = rotation.Verify(ctx, conn, ring(t, keyB, keyA), rotation.Options{})
	if !errors.As(err, &stop) {
		t.Errorf("dead connection: %v is not a *StoppedError", err)
	}
}

// BatchSize is converted to int32 for LIMIT: a large value wraps.
func TestAttackHugeBatchSize(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	seed(t, pool, ring(t, keyA), 10)
	// Rows under a key that is not in the ring: verify must report them.
	if err := secrets.New(ring(t, keyC)).Set(ctx, pool, "lost", 1); err != nil {
		t.Fatal(err)
	}
	for _, bs := range []int{1 << 31, 1 << 32, 1<<32 + 3} {
		rep, err := rotation.Verify(ctx, pool, ring(t, keyB, keyA), rotation.Options{BatchSize: bs})
		switch {
		case err != nil:
			t.Logf("BatchSize %d: Verify error: %v", bs, err)
		case rep.Total != 11 || rep.Unreadable != 1:
			t.Errorf("BatchSize %d: Verify reports total %d, unreadable %d with no error; "+
				"the table holds 11 rows, 1 unreadable", bs, rep.Total, rep.Unreadable)
		}
		res, err := rotation.Rotate(ctx, pool, ring(t, keyB, keyA), rotation.Options{BatchSize: bs})
		if err == nil && res.Rotated+res.Skipped+res.Failed != 11 {
			t.Errorf("BatchSize %d: Rotate looked at %d rows with no error; the table holds 11",
				bs, res.Rotated+res.Skipped+res.Failed)
		}
	}
}

// Rows with an id of 0 or less (explicit ids are allowed: GENERATED BY
// DEFAULT) are never visited: walk starts after id 0.
func TestAttackRowsWithNonPositiveIDs(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	seed(t, pool, ring(t, keyA), 3)
	// Move two rows to ids 0 and -1, as an adopted table or a manual insert might hold.
	if _, err := pool.Exec(ctx, `UPDATE secrets SET id = id - 2 WHERE id <= 2`); err != nil {
		t.Fatal(err)
	}
	rep, err := rotation.Verify(ctx, pool, ring(t, keyB), rotation.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("verify: %+v", rep)
	if rep.Total != 3 || rep.Unreadable != 3 {
		t.Errorf("verify with the new key only: total %d, unreadable %d; the table holds 3 rows under the old key",
			rep.Total, rep.Unreadable)
	}
	res, err := rotation.Rotate(ctx, pool, ring(t, keyB, keyA), rotation.Options{})
	if err != nil || res.Rotated != 3 {
		t.Errorf("rotate: %+v, %v; want 3 rotated", res, err)
	}
}

// A row that the application holds locked for the whole run is not waited
// for: rotation reports it as changed, rotates the rest, and a rerun after
// the lock is gone finishes it.
func TestAttackRowLockedThroughRotation(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	want := seed(t, pool, ring(t, keyA), 20)
	r := ring(t, keyB, keyA)

	blocker, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(ctx, "SELECT 1 FROM secrets WHERE id = 6 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	res, err := rotation.Rotate(ctx, pool, r, rotation.Options{BatchSize: 4})
	blocker.Rollback(ctx)
	if err != nil || res.Rotated != 19 || res.Failed != 1 || res.Failures[0].ID != 6 ||
		!errors.Is(res.Failures[0].Err, rotation.ErrChanged) {
		t.Fatalf("with row 6 locked: %+v, %v; want 19 rotated and row 6 failed as changed", res, err)
	}

	res, err = rotation.Rotate(ctx, pool, r, rotation.Options{BatchSize: 4})
	if err != nil || res.Rotated != 1 || res.Skipped != 19 {
		t.Fatalf("rerun: %+v, %v; want 1 rotated, 19 skipped", res, err)
	}
	got := readAll(t, pool, ring(t, keyB))
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s differs after a rotation around a locked row", k)
		}
	}
}
