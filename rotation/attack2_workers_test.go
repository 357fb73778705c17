package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

const rotateClassA2 = 0x73725254

func advisoryHeld(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid IN (x'73725254'::int::oid, x'73725646'::int::oid) AND granted`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Sparse ids: two rows 10^12 apart mean 10^8 empty chunks, each claimed by a round trip.
func TestAttack2SparseIDs(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	want := seed(t, pool, ring(t, keyA), 2)
	if _, err := pool.Exec(context.Background(),
		`UPDATE secrets SET id = CASE WHEN id = 1 THEN 1 ELSE 1000000000000 END`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	var last atomic.Int64
	res, err := rotation.Rotate(ctx, pool, ring(t, keyB, keyA), rotation.Options{Workers: 4,
		Progress: func(p rotation.Progress) { last.Store(p.Done) }})
	t.Logf("took %v: %+v, %v", time.Since(start), res, err)
	if err != nil {
		t.Errorf("2 rows at ids 1 and 1e12 with 4 workers did not finish in 15s: %v (rotated %d)", err, res.Rotated)
	}
	_ = want
}

// A row whose id is the smallest bigint: does Verify see it?
func TestAttack2MinInt64Row(t *testing.T) {
	for _, workers := range []int{0, 2} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) {
			_, pool := pgtest.Migrated(t)
			seed(t, pool, ring(t, keyA), 3)
			if _, err := pool.Exec(context.Background(), `UPDATE secrets SET id = $1 WHERE id = 1`,
				int64(math.MinInt64)); err != nil {
				t.Fatal(err)
			}
			if _, err := pool.Exec(context.Background(), `UPDATE secrets SET id = $1 WHERE id = 2`,
				int64(math.MinInt64+1)); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// only rows near the bottom and id 3: chunk range is ~ 9.2e14 chunks with workers,
			// so move id 3 too.
			if _, err := pool.Exec(ctx, `UPDATE secrets SET id = $1 WHERE id = 3`, int64(math.MinInt64+5)); err != nil {
				t.Fatal(err)
			}
			res, err := rotation.Rotate(ctx, pool, ring(t, keyB, keyA), rotation.Options{Workers: workers})
			t.Logf("rotate: %+v %v", res, err)
			rep, err := rotation.Verify(ctx, pool, ring(t, keyB), rotation.Options{Workers: workers})
			t.Logf("verify with new key only: %+v %v", rep, err)
			if err == nil && rep.Unreadable == 0 && rep.Total != 3 {
				t.Errorf("workers=%d: Verify with the new key only says total %d, 0 unreadable; "+
					"the table holds 3 rows, "+
					"one (id MinInt64) still under the old key: dropping the old key loses it",
					workers, rep.Total)
			}
		})
	}
}

// Ids near MaxInt64 with workers.
func TestAttack2NearMaxInt64(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	want := seed(t, pool, ring(t, keyA), 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, id := range []int64{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64 - 10_000, math.MaxInt64 - 25_000} {
		if _, err := pool.Exec(ctx, `UPDATE secrets SET id = $1 WHERE id = $2`, id, i+1); err != nil {
			t.Fatal(err)
		}
	}
	res, err := rotation.Rotate(ctx, pool, ring(t, keyB, keyA), rotation.Options{Workers: 3, BatchSize: 1})
	if err != nil || res.Rotated != 4 {
		t.Errorf("near MaxInt64: %+v, %v", res, err)
	}
	rep, err := rotation.Verify(ctx, pool, ring(t, keyB), rotation.Options{Workers: 3, BatchSize: 1})
	if err != nil || rep.Current != 4 || rep.Total != 4 {
		t.Errorf("verify near MaxInt64: %+v, %v", rep, err)
	}
	got := readAll(t, pool, ring(t, keyB))
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s differs", k)
		}
	}
}

// Three runs in three pools, with inserts and deletes going on, and Verify with workers.
func TestAttack2ThreeRunsWithChurn(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	want := spread(t, pool, 300) // ids (i-10)*7919, many chunks, some negative
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pools := []*pgxpool.Pool{pool}
	for range 2 {
		p, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		pools = append(pools, p)
	}
	r := ring(t, keyB, keyA)
	var wg sync.WaitGroup
	results := make([]rotation.Result, 3)
	errs := make([]error, 3)
	var mu sync.Mutex
	progress := make([]rotation.Progress, 3)
	for i := range 3 {
		wg.Go(func() {
			results[i], errs[i] = rotation.Rotate(ctx, pools[i], r, rotation.Options{BatchSize: 3 + i, Workers: 2 + i,
				Progress: func(p rotation.Progress) { mu.Lock(); progress[i] = p; mu.Unlock() }})
		})
	}
	var rep rotation.Report
	var repErr error
	wg.Go(func() { rep, repErr = rotation.Verify(ctx, pool, r, rotation.Options{Workers: 3, BatchSize: 4}) })
	// churn: insert new rows with the old ring under new names, delete nothing of want.
	stop := make(chan struct{})
	var inserted atomic.Int64
	var cw sync.WaitGroup
	cw.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := secrets.New(ring(t, keyA)).Group("churn").Set(ctx, pool, fmt.Sprintf("c%d", i), "x"); err != nil {
				t.Errorf("churn: %v", err)
				return
			}
			inserted.Add(1)
			if i%2 == 0 {
				secrets.New(ring(t, keyA)).Group("churn").Delete(ctx, pool, fmt.Sprintf("c%d", i))
			}
		}
	})
	wg.Wait()
	close(stop)
	cw.Wait()
	var rotated int64
	for i := range 3 {
		if errs[i] != nil {
			t.Errorf("run %d: %v", i, errs[i])
		}
		if results[i].Failed != 0 {
			t.Errorf("run %d failures %+v", i, results[i].Failures)
		}
		p := progress[i]
		if p.Done != results[i].Rotated+results[i].Skipped+results[i].Failed {
			t.Errorf("run %d: progress Done %d != result sum %+v", i, p.Done, results[i])
		}
		rotated += results[i].Rotated
	}
	t.Logf("results %+v verify %+v %v; churn inserted %d", results, rep, repErr, inserted.Load())
	if repErr != nil || rep.Unreadable != 0 {
		t.Errorf("verify during rotate: %+v %v", rep, repErr)
	}
	if rotated < 300 {
		t.Errorf("rotated %d < 300 seeded rows", rotated)
	}
	got := readAll(t, pool, ring(t, keyB, keyA))
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s differs", k)
		}
	}
	// after the runs, the seeded rows are under the new key only
	only := ring(t, keyB)
	for k := range want {
		_ = k
	}
	var under int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM secrets WHERE "group" = 'users'`).
		Scan(&under); err != nil || under != 300 {
		t.Errorf("%d users rows (%v)", under, err)
	}
	rep2, err := rotation.Verify(ctx, pool, only, rotation.Options{})
	t.Logf("verify new-only after: %+v %v", rep2, err)
	for _, f := range rep2.Failures {
		if f.Name.Group == "users" {
			t.Errorf("seeded row %d not under the new key after 3 runs", f.ID)
		}
	}
	if n := advisoryHeld(t, pool); n != 0 {
		t.Errorf("%d advisory locks left held after the runs", n)
	}
}

// Plain count check: three runs, no churn: Rotated adds up to exactly the rows.
func TestAttack2ThreeRunsCountsAddUp(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	spread(t, pool, 200)
	// put some rows in the same chunk so that they compete within chunks
	if _, err := pool.Exec(context.Background(), `UPDATE secrets SET id = id / 1000 WHERE id % 2 = 0`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for round := range 3 {
		if round > 0 {
			// back to old key
			if _, err := pool.Exec(ctx, `TRUNCATE secrets`); err != nil {
				t.Fatal(err)
			}
			spread(t, pool, 200)
		}
		pools := []*pgxpool.Pool{pool}
		for range 2 {
			p, err := pgxpool.New(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			pools = append(pools, p)
		}
		var wg sync.WaitGroup
		results := make([]rotation.Result, 3)
		errs := make([]error, 3)
		for i := range 3 {
			wg.Go(func() {
				results[i], errs[i] = rotation.Rotate(ctx, pools[i], ring(t, keyB, keyA),
					rotation.Options{BatchSize: 1 + i, Workers: 1 + 2*i})
			})
		}
		wg.Wait()
		var sum int64
		for i := range 3 {
			if errs[i] != nil {
				t.Errorf("run %d: %v", i, errs[i])
			}
			sum += results[i].Rotated
			if results[i].Rotated+results[i].Skipped != 200 {
				t.Errorf("round %d run %d did not cover the table: %+v", round, i, results[i])
			}
		}
		if sum != 200 {
			t.Errorf("round %d: rotated %d in total, want 200: %+v", round, sum, results)
		}
		if n := advisoryHeld(t, pool); n != 0 {
			t.Errorf("%d advisory locks left", n)
		}
	}
}

// One run killed mid-chunk (its backend terminated during a slow swap) while another run goes on.
func TestAttack2KillOneRunMidChunk(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	want := seed(t, pool, ring(t, keyA), 40)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := pool.Exec(ctx, `
		CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.id = 6 AND current_setting('application_name') = 'victim' THEN PERFORM pg_sleep(3); END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER slow_row BEFORE UPDATE ON secrets FOR EACH ROW EXECUTE FUNCTION slow_row()`); err != nil {
		t.Fatal(err)
	}
	cfg, _ := pgxpool.ParseConfig(url)
	cfg.ConnConfig.RuntimeParams["application_name"] = "victim"
	victim, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	other, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	r := ring(t, keyB, keyA)
	var vres, ores rotation.Result
	var verr, oerr error
	var wg sync.WaitGroup
	wg.Go(func() { vres, verr = rotation.Rotate(ctx, victim, r, rotation.Options{BatchSize: 4, Workers: 2}) })
	// wait until victim sleeps, then start the other run, then kill the victim
	var vpid int32
	for range 400 {
		if err := pool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
			WHERE wait_event = 'PgSleep' AND application_name = 'victim'`).
			Scan(&vpid); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if vpid == 0 {
		t.Fatal("victim never slept")
	}
	wg.Go(func() { ores, oerr = rotation.Rotate(ctx, other, r, rotation.Options{BatchSize: 4, Workers: 2}) })
	time.Sleep(300 * time.Millisecond)
	pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, vpid)
	wg.Wait()
	t.Logf("victim %+v %v; other %+v %v", vres, verr, ores, oerr)
	var stop *rotation.StoppedError
	if !errors.As(verr, &stop) {
		t.Errorf("victim: %v, want StoppedError", verr)
	} else if stop.Done != vres.Rotated+vres.Skipped+vres.Failed {
		t.Errorf("victim StoppedError.Done %d != result sum %+v", stop.Done, vres)
	}
	if oerr != nil || ores.Rotated+ores.Skipped != 40 {
		t.Errorf("other run: %+v %v; want the whole table covered", ores, oerr)
	}
	if vres.Rotated+ores.Rotated != 40 {
		t.Logf("NOTE rotated sum %d != 40 (victim batch committed before kill?)", vres.Rotated+ores.Rotated)
	}
	pool.Exec(ctx, `DROP TRIGGER slow_row ON secrets`)
	got := readAll(t, pool, ring(t, keyB))
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s differs", k)
		}
	}
	if n := advisoryHeld(t, pool); n != 0 {
		t.Errorf("%d advisory locks left", n)
	}
}

// Cancel a run while it waits for a chunk another session holds; race the
// grant with the cancel; look for locks the run's pooled connections keep.
func TestAttack2CancelWhileWaitingForChunk(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	seed(t, pool, ring(t, keyA), 5)
	holder, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	run, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	r := ring(t, keyB, keyA)
	leaks := 0
	for i := range 40 {
		if _, err := holder.Exec(context.Background(), `SELECT pg_advisory_lock($1::int, 0)`,
			rotateClassA2); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := rotation.Rotate(ctx, run, r, rotation.Options{Workers: 2, DryRun: true})
			done <- err
		}()
		time.Sleep(time.Duration(20+i%5) * time.Millisecond)
		unlocked := make(chan struct{})
		go func() {
			defer close(unlocked)
			holder.Exec(context.Background(), `SELECT pg_advisory_unlock($1::int, 0)`, rotateClassA2)
		}()
		time.Sleep(time.Duration(i%7) * 100 * time.Microsecond)
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: cancelled run did not return", i)
		}
		<-unlocked // holder is one connection: one query at a time
		// Locks held by connections of the run's pool. A connection that
		// the cancel closed lets go of its locks once the server notices,
		// so look again for a while; a pooled connection that kept a lock
		// keeps it for good.
		var n int
		for wait := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks l
				JOIN pg_stat_activity a USING (pid)
				WHERE l.locktype='advisory' AND l.classid = x'73725254'::int::oid
				AND l.granted AND a.pid <> $1`, holder.PgConn().PID()).Scan(&n)
			if n == 0 || time.Now().After(wait) {
				break
			}
		}
		if n > 0 {
			leaks++
			t.Errorf("round %d: %d chunk locks left held by the cancelled run's pooled connections", i, n)
			break
		}
		// make sure holder released
		holder.Exec(context.Background(), `SELECT pg_advisory_unlock_all()`)
	}
	_ = leaks
}

// A session that holds a chunk forever (crashed-but-not-dead process, idle in
// a tool): a run with workers without deadline never returns. Time bounded here.
func TestAttack2StuckHolder(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	seed(t, pool, ring(t, keyA), 5)
	holder, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	holder.Exec(context.Background(), `SELECT pg_advisory_lock($1::int, 0)`, rotateClassA2)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var last rotation.Progress
	res, err := rotation.Rotate(ctx, pool, ring(t, keyB, keyA), rotation.Options{Workers: 2,
		Progress: func(p rotation.Progress) { last = p }})
	t.Logf("with chunk 0 held elsewhere: %+v, %v, last progress %+v", res, err, last)
}
