package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// Attacks on the read-ahead path of Rotate and Verify (a *pgxpool.Pool,
// no Workers). Messages name rows by id or name, never by value.

// a3Pool opens a pool of at most maxConns connections on the test's
// schema (0 keeps pgx's default).
func a3Pool(t *testing.T, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// a3Goroutines waits for the goroutine count to fall to at most base,
// yielding in between, and fails when it never does.
func a3Goroutines(t *testing.T, base int) {
	t.Helper()
	n := runtime.NumGoroutine()
	for range 2000 {
		if n = runtime.NumGoroutine(); n <= base {
			return
		}
		runtime.Gosched()
		runtime.GC()
	}
	t.Errorf("%d goroutines after the run returned, %d before", n, base)
}

// a3CheckStop checks what a stopped or finished run says against the
// table: the counts add up, and every row up to AfterID is under the
// current key.
func a3CheckStop(t *testing.T, pool, runPool *pgxpool.Pool, r *secrets.Keyring, res rotation.Result, err error) {
	t.Helper()
	var stop *rotation.StoppedError
	if err != nil && !errors.As(err, &stop) {
		t.Fatalf("error is not a *StoppedError: %v", err)
	}
	sum := res.Rotated + res.Skipped + res.Failed
	if stop != nil {
		if sum != stop.Done {
			t.Errorf("Rotated+Skipped+Failed = %d, StoppedError.Done = %d", sum, stop.Done)
		}
		after := stop.AfterID
		rows, qerr := pool.Query(context.Background(),
			`SELECT id, key, "group", owner_id, value FROM secrets WHERE id <= $1 ORDER BY id`, after)
		if qerr != nil {
			t.Fatal(qerr)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var n secrets.Name
			var v string
			if err := rows.Scan(&id, &n.Key, &n.Group, &n.Owner, &v); err != nil {
				t.Fatal(err)
			}
			if _, current, err := r.Open(n, v); err != nil || !current {
				t.Errorf("row %d is at or before AfterID %d but not under the current key (%v)", id, after, err)
			}
		}
	}
	// A connection whose query was cancelled is destroyed by pgxpool on a
	// goroutine of its own: poll until it is gone.
	got := runPool.Stat().AcquiredConns()
	for i := 0; got != 0 && i < 500; i++ {
		time.Sleep(10 * time.Millisecond)
		got = runPool.Stat().AcquiredConns()
	}
	if got != 0 {
		t.Errorf("%d connections still acquired after the run returned", got)
	}
}

// TestAttack3AheadStopsAnywhere cancels a pipelined rotation at every
// read and every write in turn, and before it starts. Each run says how
// far it got, truthfully, leaks nothing, and a rerun finishes the table.
func TestAttack3AheadStopsAnywhere(t *testing.T) {
	type point struct {
		name        string
		beforeStart bool
		atRead      int
		atWrite     int
	}
	var points []point
	points = append(points, point{name: "before start", beforeStart: true})
	for i := 1; i <= 6; i++ {
		points = append(points, point{name: fmt.Sprintf("read %d", i), atRead: i})
		points = append(points, point{name: fmt.Sprintf("write %d", i), atWrite: i})
	}
	url, pool := pgtest.Migrated(t)
	old := ring(t, keyA)
	for _, p := range points {
		t.Run(p.name, func(t *testing.T) {
			if _, err := pool.Exec(context.Background(), `DELETE FROM secrets`); err != nil {
				t.Fatal(err)
			}
			want := seed(t, pool, old, 11)
			r := ring(t, keyB, keyA)
			base := runtime.NumGoroutine()
			for _, maxConns := range []int32{1, 2, 0} {
				if _, err := rotation.Rotate(context.Background(), pool, ring(t, keyA, keyB),
					rotation.Options{BatchSize: 2}); err != nil {
					t.Fatal(err) // back under keyA for this round
				}
				p2 := a3Pool(t, url, maxConns)
				ctx, cancel := context.WithCancel(context.Background())
				db := &aheadDB{Pool: p2}
				if p.beforeStart {
					cancel()
				}
				db.beforeRead = func(n int) error {
					if n == p.atRead {
						cancel()
					}
					return nil
				}
				db.beforeWrite = func(n int, _ []int64) {
					if n == p.atWrite {
						cancel()
					}
				}
				res, err := rotation.Rotate(ctx, db, r, rotation.Options{BatchSize: 2})
				cancel()
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("max conns %d: %v, want a stop for the cancel", maxConns, err)
				}
				a3CheckStop(t, pool, p2, r, res, err)
				p2.Close()
				a3Goroutines(t, base)

				res, err = rotation.Rotate(context.Background(), pool, r, rotation.Options{BatchSize: 2})
				if err != nil || res.Failed != 0 || res.Rotated+res.Skipped != 11 {
					t.Fatalf("max conns %d: rerun: %+v, %v", maxConns, res, err)
				}
				if !cmp.Equal(want, readAll(t, pool, ring(t, keyB))) {
					t.Errorf("max conns %d: values differ after a cancelled run and a rerun", maxConns)
				}
			}
		})
	}
}

// TestAttack3AheadBackendTerminated ends every backend of the run's pool
// just before its n-th read or write: the run fails or carries on (a new
// connection), says truthfully how far it got, and a rerun finishes.
func TestAttack3AheadBackendTerminated(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	old := ring(t, keyA)
	want := seed(t, pool, old, 9)
	r := ring(t, keyB, keyA)
	appName := "a3rot" + fmt.Sprint(os.Getpid())
	for _, step := range []string{"read", "write"} {
		for n := 1; n <= 4; n++ {
			t.Run(fmt.Sprintf("%s %d", step, n), func(t *testing.T) {
				if _, err := rotation.Rotate(context.Background(), pool, ring(t, keyA, keyB),
					rotation.Options{BatchSize: 2}); err != nil {
					t.Fatal(err)
				}
				cfg, _ := pgxpool.ParseConfig(url)
				cfg.ConnConfig.RuntimeParams["application_name"] = appName
				p2, err := pgxpool.NewWithConfig(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer p2.Close()
				kill := func() {
					_, err := pool.Exec(context.Background(), `SELECT pg_terminate_backend(pid, 5000)
						FROM pg_stat_activity WHERE application_name = $1`, appName)
					if err != nil {
						t.Errorf("terminate: %v", err)
					}
				}
				db := &aheadDB{Pool: p2}
				db.beforeRead = func(i int) error {
					if step == "read" && i == n {
						kill()
					}
					return nil
				}
				db.beforeWrite = func(i int, _ []int64) {
					if step == "write" && i == n {
						kill()
					}
				}
				res, err := rotation.Rotate(context.Background(), db, r, rotation.Options{BatchSize: 2})
				t.Logf("run: %+v, err %v", res, err)
				a3CheckStop(t, pool, p2, r, res, err)

				res, err = rotation.Rotate(context.Background(), pool, r, rotation.Options{BatchSize: 2})
				if err != nil || res.Failed != 0 || res.Rotated+res.Skipped != 9 {
					t.Fatalf("rerun: %+v, %v", res, err)
				}
				if !cmp.Equal(want, readAll(t, pool, ring(t, keyB))) {
					t.Errorf("values differ after a killed run and a rerun")
				}
			})
		}
	}
}

// TestAttack3AheadConcurrentWriters rotates while application writers
// Set, SetMany and Delete the same rows, with the old and the new key, on
// pools of 1, 2 and many connections. No write may be lost or overwritten:
// after the writers stop and a rerun, every row reads back under the new
// key alone as the writers last left it.
func TestAttack3AheadConcurrentWriters(t *testing.T) {
	for _, maxConns := range []int32{1, 2, 0} {
		t.Run(fmt.Sprintf("max conns %d", maxConns), func(t *testing.T) {
			url, admin := pgtest.Migrated(t)
			pool := a3Pool(t, url, maxConns)
			ctx := context.Background()
			const n = 60
			oldRing, newRing := ring(t, keyA), ring(t, keyB, keyA)
			want := map[string]string{}
			var mu sync.Mutex
			s := secrets.New(oldRing).Group("w")
			for i := range n {
				if err := s.Set(ctx, admin, fmt.Sprintf("k%d", i), "v0"); err != nil {
					t.Fatal(err)
				}
				want[fmt.Sprintf("k%d", i)] = "v0"
			}
			stop := make(chan struct{})
			var writers sync.WaitGroup
			for w := range 4 {
				writers.Go(func() {
					wr := oldRing
					if w%2 == 1 {
						wr = newRing
					}
					st := secrets.New(wr).Group("w")
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						// Each writer owns the keys k ≡ w (mod 4).
						k := fmt.Sprintf("k%d", (i*4+w)%n)
						v := fmt.Sprintf("w%d-%d", w, i)
						var err error
						switch i % 3 {
						case 0:
							err = st.Set(ctx, admin, k, v)
						case 1:
							err = secrets.SetMany(ctx, admin, wr, []secrets.Entry{
								{Name: st.Name(k), Value: v}})
						case 2:
							_, err = st.Delete(ctx, admin, k)
							v = ""
						}
						if err != nil {
							t.Errorf("writer %d: %v", w, err)
							return
						}
						mu.Lock()
						if v == "" {
							delete(want, k)
						} else {
							want[k] = v
						}
						mu.Unlock()
					}
				})
			}
			var runs sync.WaitGroup
			for range 3 {
				runs.Go(func() {
					res, err := rotation.Rotate(ctx, pool, newRing, rotation.Options{BatchSize: 4})
					if err != nil {
						t.Errorf("rotate during writes: %v", err)
					}
					for _, f := range res.Failures {
						if !errors.Is(f.Err, rotation.ErrChanged) {
							t.Errorf("row %d failed with %v", f.ID, f.Err)
						}
					}
				})
			}
			runs.Wait()
			close(stop)
			writers.Wait()
			if _, err := rotation.Rotate(ctx, pool, newRing, rotation.Options{BatchSize: 4}); err != nil {
				t.Fatal(err)
			}
			rep, err := rotation.Verify(ctx, pool, ring(t, keyB), rotation.Options{BatchSize: 4})
			if err != nil || rep.Unreadable != 0 || rep.Previous != 0 {
				t.Errorf("verify under the new key alone: %+v, %v", rep, err)
			}
			got := map[string]string{}
			for k, v := range readAll(t, admin, ring(t, keyB)) {
				got[strings.TrimPrefix(k, `w "`)] = v
			}
			wantNamed := map[string]string{}
			for k, v := range want {
				wantNamed[secrets.New(newRing).Group("w").Name(k).String()] = v
			}
			gotNamed := readAll(t, admin, ring(t, keyB))
			if !cmp.Equal(wantNamed, gotNamed) {
				t.Errorf("rows differ from the writers' last writes: %d rows, want %d", len(gotNamed), len(wantNamed))
			}
			if a := pool.Stat().AcquiredConns(); a != 0 {
				t.Errorf("%d connections acquired after the runs", a)
			}
		})
	}
}

// TestAttack3TwoRotationsAtOnce: two pipelined rotations of one table to
// one key each rotate a row at most once between them, and account for
// every row.
func TestAttack3TwoRotationsAtOnce(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	want := seed(t, pool, ring(t, keyA), 200)
	r := ring(t, keyB, keyA)
	var results [2]rotation.Result
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			var err error
			results[i], err = rotation.Rotate(context.Background(), pool, r, rotation.Options{BatchSize: 7})
			if err != nil {
				t.Errorf("run %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	for i, res := range results {
		if res.Rotated+res.Skipped+res.Failed != 200 {
			t.Errorf("run %d: %+v does not account for 200 rows", i, res)
		}
	}
	if got := results[0].Rotated + results[1].Rotated; got != 200 {
		t.Errorf("the runs rotated %d rows between them, want each of 200 once", got)
	}
	if !cmp.Equal(want, readAll(t, pool, ring(t, keyB))) {
		t.Errorf("values differ after two rotations at once")
	}
}

// TestAttack3SequentialHandles: a pgx.Tx, a *pgx.Conn and a *pgxpool.Conn
// take the sequential path; Rotate, DryRun and Verify work on each, and
// Progress is called on the caller's goroutine (a panic in it reaches the
// caller).
func TestAttack3SequentialHandles(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	ctx := context.Background()
	want := seed(t, pool, ring(t, keyA), 7)
	r := ring(t, keyB, keyA)
	for _, via := range []string{"tx", "conn", "pool conn"} {
		t.Run(via, func(t *testing.T) {
			if _, err := rotation.Rotate(ctx, pool, ring(t, keyA, keyB), rotation.Options{}); err != nil {
				t.Fatal(err)
			}
			var db secrets.DBTX
			finish := func() {}
			switch via {
			case "tx":
				tx, err := pool.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				db, finish = tx, func() {
					if err := tx.Commit(ctx); err != nil {
						t.Fatal(err)
					}
				}
			case "conn":
				c, err := pgx.Connect(ctx, url)
				if err != nil {
					t.Fatal(err)
				}
				db, finish = c, func() { c.Close(ctx) }
			case "pool conn":
				c, err := pool.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				db, finish = c, c.Release
			}
			dry, err := rotation.Rotate(ctx, db, r, rotation.Options{BatchSize: 2, DryRun: true})
			if err != nil || dry.Rotated != 7 {
				t.Errorf("dry run: %+v, %v", dry, err)
			}
			panicked := func() (p bool) {
				defer func() { p = recover() != nil }()
				_, _ = rotation.Rotate(ctx, db, r, rotation.Options{BatchSize: 2,
					Progress: func(rotation.Progress) { panic("progress") }})
				return false
			}()
			if !panicked {
				t.Errorf("a panic in Progress did not reach the caller")
			}
			res, err := rotation.Rotate(ctx, db, r, rotation.Options{BatchSize: 2})
			if err != nil || res.Rotated+res.Skipped != 7 {
				t.Errorf("rotate: %+v, %v", res, err)
			}
			rep, err := rotation.Verify(ctx, db, ring(t, keyB), rotation.Options{BatchSize: 2})
			if err != nil || rep.Current != 7 {
				t.Errorf("verify: %+v, %v", rep, err)
			}
			finish()
			if !cmp.Equal(want, readAll(t, pool, ring(t, keyB))) {
				t.Errorf("values differ")
			}
		})
	}
}

// TestAttack3AheadDryRunVerifySlowProgress: DryRun and Verify on the
// pipelined path count right, write nothing, and a Progress callback that
// blocks on every call (until the test lets it go) sees every batch in
// order, one call at a time.
func TestAttack3AheadDryRunVerifySlowProgress(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	seed(t, pool, ring(t, keyA), 23)
	before := values(t, pool)
	r := ring(t, keyB, keyA)

	var inside atomic.Int32
	var last int64
	progress := func(p rotation.Progress) {
		if inside.Add(1) != 1 {
			t.Errorf("Progress called while another call runs")
		}
		if p.Done <= last || p.Rotated+p.Skipped+p.Failed != p.Done {
			t.Errorf("progress %+v after done %d", p, last)
		}
		last = p.Done
		runtime.Gosched()
		inside.Add(-1)
	}
	dry, err := rotation.Rotate(ctx, pool, r, rotation.Options{BatchSize: 2, DryRun: true, Progress: progress})
	if err != nil || !cmp.Equal(dry, rotation.Result{Rotated: 23}) || last != 23 {
		t.Errorf("dry run: %+v, %v, last progress %d", dry, err, last)
	}
	if !cmp.Equal(before, values(t, pool)) {
		t.Errorf("a dry run wrote")
	}
	last = 0
	rep, err := rotation.Verify(ctx, pool, r, rotation.Options{BatchSize: 2, Progress: progress})
	if err != nil || rep.Previous != 23 || rep.Total != 23 || last != 23 {
		t.Errorf("verify: %+v, %v", rep, err)
	}
}

// TestAttack3AheadProgressPanic: a panic in Progress on the pipelined path
// or in a worker reaches the caller, as it does on a pgx.Tx, and does not
// crash the program from a goroutine the caller cannot recover. The run happens in
// a child process, since a crash would end this one.
func TestAttack3AheadProgressPanic(t *testing.T) {
	if os.Getenv("A3_PROGRESS_PANIC_CHILD") == "1" {
		_, pool := pgtest.Migrated(t)
		seed(t, pool, ring(t, keyA), 6)
		for _, workers := range []int{0, 2} {
			recovered := func() (p bool) {
				defer func() { p = recover() != nil }()
				_, _ = rotation.Rotate(context.Background(), pool, ring(t, keyB, keyA), rotation.Options{
					BatchSize: 2, Workers: workers,
					Progress: func(rotation.Progress) { panic("progress callback") }})
				return false
			}()
			fmt.Printf("A3-RECOVERED workers=%d: %v\n", workers, recovered)
		}
		return
	}
	pgtest.BaseURL(t) // skip without a server, as the child would
	cmd := exec.Command(os.Args[0], "-test.run=^TestAttack3AheadProgressPanic$", "-test.count=1")
	cmd.Env = append(os.Environ(), "A3_PROGRESS_PANIC_CHILD=1")
	out, err := cmd.CombinedOutput()
	for _, workers := range []int{0, 2} {
		if !strings.Contains(string(out), fmt.Sprintf("A3-RECOVERED workers=%d: true", workers)) {
			crashed := strings.Contains(string(out), "panic: progress callback")
			t.Errorf("workers %d: a panic in Progress on a pool did not reach the caller "+
				"(child crashed: %v, exit: %v)", workers, crashed, err)
		}
	}
}
