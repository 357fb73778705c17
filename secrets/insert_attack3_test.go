package secrets_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// Attacks on Sealed.Insert (one COPY) and ErrExists.

// a3Names returns n names over global and owned scopes, in an order that
// depends on rev.
func a3Names(n int, rev bool) []secrets.Name {
	var names []secrets.Name
	for i := range n {
		nm := secrets.Name{Group: fmt.Sprintf("g%d", i%3), Key: fmt.Sprintf("k%d", i)}
		if i%2 == 1 {
			nm.Owner = ptr(int64(i % 4))
		}
		names = append(names, nm)
	}
	if rev {
		slices.Reverse(names)
	}
	return names
}

func a3Seal(t *testing.T, ring *secrets.Keyring, names []secrets.Name, v int) *secrets.Sealed {
	t.Helper()
	entries := make([]secrets.Entry, len(names))
	for i, n := range names {
		entries[i] = secrets.Entry{Name: n, Value: v}
	}
	s, err := secrets.SealMany(ring, entries)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAttack3InsertRacesWrite runs Inserts and Writes (upserts) of the same
// names, given in opposite orders, at once. None may deadlock or fail with
// anything but ErrExists, and no name may end up stored twice.
func TestAttack3InsertRacesWrite(t *testing.T) {
	pool := newDB(t)
	ctx := context.Background()
	ring := newRing(t, hexKey)
	const rounds, n = 30, 40
	for round := range rounds {
		if _, err := pool.Exec(ctx, `DELETE FROM secrets`); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			sealed := a3Seal(t, ring, a3Names(n, g%2 == 1), round*10+g)
			wg.Go(func() {
				var err error
				if g%4 < 2 {
					err = sealed.Insert(ctx, pool)
					if errors.Is(err, secrets.ErrExists) {
						err = nil
					}
				} else {
					err = sealed.Write(ctx, pool)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				t.Fatalf("round %d: SQLSTATE %s: %v", round, pgErr.Code, err)
			}
			t.Fatalf("round %d: %v", round, err)
		}
		if got := countRows(t, pool, ""); got != n {
			t.Fatalf("round %d: %d rows, want %d", round, got, n)
		}
	}
}

// TestAttack3InsertWaitsForUncommitted: an Insert of a name that another
// transaction has inserted but not committed waits for it; then it fails
// with ErrExists if that transaction commits, and succeeds if it rolls back.
// In a pgx.Tx the caller's transaction goes on either way.
func TestAttack3InsertWaitsForUncommitted(t *testing.T) {
	for _, end := range []string{"commit", "rollback"} {
		for _, via := range []string{"pool", "tx"} {
			t.Run(end+"/"+via, func(t *testing.T) {
				pool := newDB(t)
				ctx := context.Background()
				ring := newRing(t, hexKey)
				names := a3Names(6, false)
				other, err := pool.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer other.Rollback(ctx)
				if err := a3Seal(t, ring, names[2:3], 1).Insert(ctx, other); err != nil {
					t.Fatal(err)
				}

				var db secrets.DBTX = pool
				var tx pgx.Tx
				if via == "tx" {
					if tx, err = pool.Begin(ctx); err != nil {
						t.Fatal(err)
					}
					defer tx.Rollback(ctx)
					db = tx
					// Something of the caller's own in the transaction.
					if err := a3Seal(t, ring, []secrets.Name{{Group: "own", Key: "x"}}, 9).Write(ctx, tx); err != nil {
						t.Fatal(err)
					}
				}
				done := make(chan error, 1)
				go func() { done <- a3Seal(t, ring, names, 2).Insert(ctx, db) }()
				// Wait until the Insert waits on the other transaction's row.
				waitForLockWait(t, pool, other.Conn().PgConn().PID())
				if end == "commit" {
					err = other.Commit(ctx)
				} else {
					err = other.Rollback(ctx)
				}
				if err != nil {
					t.Fatal(err)
				}
				err = <-done
				if end == "commit" && !errors.Is(err, secrets.ErrExists) {
					t.Fatalf("insert after the other committed: %v, want ErrExists", err)
				}
				if end == "rollback" && err != nil {
					t.Fatalf("insert after the other rolled back: %v", err)
				}
				if tx != nil {
					if n := countRows(t, tx, `"group" = 'own'`); n != 1 {
						t.Errorf("the caller's own write is gone from its transaction (%d rows)", n)
					}
					if err := tx.Commit(ctx); err != nil {
						t.Fatalf("the caller's transaction did not survive: %v", err)
					}
				}
				want := 6
				if end == "commit" {
					want = 1
				}
				if via == "tx" {
					want++
				}
				if got := countRows(t, pool, ""); got != want {
					t.Errorf("%d rows stored, want %d", got, want)
				}
			})
		}
	}
}

// waitForLockWait waits until some backend waits on the backend pid.
func waitForLockWait(t *testing.T, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, pid uint32) {
	t.Helper()
	for range 1000 {
		var n int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE $1::int = ANY(pg_blocking_pids(pid))`, int(pid)).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		// Polling the server is the wait; no assertion depends on time.
		var one int
		_ = pool.QueryRow(context.Background(), `SELECT 1 FROM pg_sleep(0.01)`).Scan(&one)
	}
	t.Fatal("the insert never waited on the other transaction")
}

// TestAttack3InsertInSQLBegin: on a connection inside a transaction begun
// with SQL, an Insert that meets an existing secret still says ErrExists
// (and, as documented, the transaction is aborted).
func TestAttack3InsertInSQLBegin(t *testing.T) {
	pool := newDB(t)
	ctx := context.Background()
	ring := newRing(t, hexKey)
	names := a3Names(4, false)
	if err := a3Seal(t, ring, names[:1], 1).Write(ctx, pool); err != nil {
		t.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	err = a3Seal(t, ring, names, 2).Insert(ctx, conn)
	if !errors.Is(err, secrets.ErrExists) {
		t.Fatalf("insert: %v, want ErrExists", err)
	}
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if got := countRows(t, pool, ""); got != 1 {
		t.Errorf("%d rows, want 1", got)
	}
}
