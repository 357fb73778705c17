package secrets_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// Sealed.Insert writes new secrets, and writes nothing when one of them
// exists: in a pool, on a connection and in a pgx.Tx, which survives.
func TestSealedInsert(t *testing.T) {
	for _, via := range []string{"pool", "conn", "tx"} {
		t.Run(via, func(t *testing.T) {
			pool := newDB(t)
			ctx := context.Background()
			ring := newRing(t, hexKey)
			var db secrets.DBTX = pool
			var tx pgx.Tx
			switch via {
			case "conn":
				conn, err := pool.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Release()
				db = conn
			case "tx":
				var err error
				if tx, err = pool.Begin(ctx); err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback(ctx)
				db = tx
			}
			entries := []secrets.Entry{
				{Name: secrets.Name{Group: "b", Key: "k"}, Value: 1},
				{Name: secrets.Name{Group: "a", Owner: ptr(7), Key: "k"}, Value: "x"},
				{Name: secrets.Name{Group: "b", Key: "k"}, Value: 2}, // the last one wins
			}
			first, err := secrets.SealMany(ring, entries)
			if err != nil {
				t.Fatal(err)
			}
			if err := first.Insert(ctx, db); err != nil {
				t.Fatalf("insert of new secrets: %v", err)
			}

			again, err := secrets.SealMany(ring, []secrets.Entry{
				{Name: secrets.Name{Group: "c", Key: "new"}, Value: 3},
				{Name: secrets.Name{Group: "b", Key: "k"}, Value: 4},
			})
			if err != nil {
				t.Fatal(err)
			}
			err = again.Insert(ctx, db)
			if !errors.Is(err, secrets.ErrExists) {
				t.Fatalf("insert over an existing secret: %v, want ErrExists", err)
			}
			if n := countRows(t, db, `"group" = 'c'`); n != 0 {
				t.Errorf("the failed insert wrote %d of its rows", n)
			}

			b, err := secrets.GetAs[int](ctx, secrets.New(ring).Group("b"), db, "k")
			if err != nil || b != 2 {
				t.Errorf(`b "k": %v, or not the value of the last entry`, err)
			}
			a, err := secrets.GetAs[string](ctx, secrets.New(ring).Model("a", 7), db, "k")
			if err != nil || a != "x" {
				t.Errorf(`a/7 "k": %v, or not the value inserted`, err)
			}
			if tx != nil {
				if err := tx.Commit(ctx); err != nil {
					t.Errorf("the transaction did not survive ErrExists: %v", err)
				}
			}
		})
	}
}

// A COPY that collides on something else than a secret's name, such as an
// id taken by a row written with an explicit id, is not ErrExists.
func TestSealedInsertOtherConflict(t *testing.T) {
	pool := newDB(t)
	ctx := context.Background()
	ring := newRing(t, hexKey)
	// An adopted table: a row with an id that the identity will hand out
	// next.
	_, err := pool.Exec(ctx, `INSERT INTO secrets (id, key, "group", value) VALUES (1, 'old', 'g', 'x')`)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := secrets.SealMany(ring, []secrets.Entry{{Name: secrets.Name{Group: "g", Key: "new"}, Value: 1}})
	if err != nil {
		t.Fatal(err)
	}
	err = sealed.Insert(ctx, pool)
	if err == nil || errors.Is(err, secrets.ErrExists) {
		t.Errorf("insert onto a taken id: %v, want an error that is not ErrExists", err)
	}
}
