package importer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sqlsecrets/sqlsecrets/importer"
	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

func testRing(t *testing.T) *secrets.Keyring {
	t.Helper()
	ring, err := secrets.NewKeyring(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// checkValues reads back key k<i> of group g, owner i, for every i in
// want, and compares the stored number with want[i]. Messages name the
// secret, never its value.
func checkValues(t *testing.T, db secrets.DBTX, ring *secrets.Keyring, want map[int]int) {
	t.Helper()
	for i, w := range want {
		s := secrets.New(ring).Model("g", int64(i))
		got, err := secrets.GetAs[int](context.Background(), s, db, fmt.Sprintf("k%d", i))
		if err != nil || got != w {
			t.Errorf("g/%d \"k%d\": %v, or not the value of the last line", i, i, err)
		}
	}
}

// numbered returns lines for owners from to to-1 of group g, key k<i>,
// value i*mult.
func numbered(from, to, mult int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, `{"group":"g","owner":%d,"key":"k%d","value":%d}`+"\n", i, i, i*mult)
	}
	return b.String()
}

// Secrets that exist already are overwritten: the COPY of their batch
// fails, and the batch and every later one are upserts.
func TestImportOverwritesExisting(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	ring := testRing(t)
	if _, err := importer.Import(ctx, pool, ring, strings.NewReader(numbered(10, 20, 1)),
		importer.Options{}); err != nil {
		t.Fatal(err)
	}
	var created string
	pool.QueryRow(ctx, `SELECT created_at::text FROM secrets WHERE key = 'k15'`).Scan(&created)

	// 0-9 new, 10-19 exist, 20-29 new; batches of 10.
	n, err := importer.Import(ctx, pool, ring, strings.NewReader(numbered(0, 30, 7)),
		importer.Options{BatchSize: 10})
	if err != nil || n != 30 {
		t.Fatalf("import: %d, %v; want 30", n, err)
	}
	if got := count(t, pool); got != 30 {
		t.Errorf("%d rows, want 30", got)
	}
	want := map[int]int{}
	for i := range 30 {
		want[i] = i * 7
	}
	checkValues(t, pool, ring, want)
	var after string
	pool.QueryRow(ctx, `SELECT created_at::text FROM secrets WHERE key = 'k15'`).Scan(&after)
	if after != created {
		t.Errorf("an overwrite changed created_at")
	}
}

// A name given twice in one batch is written once, with the later value,
// whether the batch is a COPY or an upsert.
func TestImportDuplicatesLastWins(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	ring := testRing(t)
	in := numbered(0, 5, 1) + numbered(0, 5, 2) + `{"key":"k","value":1}` + "\n" +
		`{"key":"k","owner":null,"value":2}` + "\n"
	for round := range 2 { // a COPY into an empty table, then upserts
		n, err := importer.Import(ctx, pool, ring, strings.NewReader(in), importer.Options{})
		if err != nil || n != 12 {
			t.Fatalf("round %d: %d, %v; want 12 records", round, n, err)
		}
		if got := count(t, pool); got != 6 {
			t.Errorf("round %d: %d rows, want 6", round, got)
		}
		checkValues(t, pool, ring, map[int]int{0: 0, 1: 2, 2: 4, 3: 6, 4: 8})
		got, err := secrets.GetAs[int](ctx, secrets.New(ring), pool, "k")
		if err != nil || got != 2 {
			t.Errorf("round %d: global \"k\": %v, or not the value of the last line", round, err)
		}
	}
}

// In a caller's transaction, a COPY that meets an existing secret is
// rolled back to its savepoint; the transaction goes on and decides.
func TestImportInCallersTx(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	ring := testRing(t)
	if _, err := importer.Import(ctx, pool, ring, strings.NewReader(numbered(5, 6, 1)),
		importer.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, commit := range []bool{false, true} {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, err := importer.Import(ctx, tx, ring, strings.NewReader(numbered(0, 10, 3)),
			importer.Options{BatchSize: 4})
		if err != nil || n != 10 {
			t.Fatalf("commit %v: import: %d, %v; want 10", commit, n, err)
		}
		if got := count(t, tx); got != 10 {
			t.Errorf("commit %v: %d rows inside the transaction, want 10", commit, got)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatalf("commit %v: %v", commit, err)
		}
		want := 1
		if commit {
			want = 10
		}
		if got := count(t, pool); got != want {
			t.Errorf("commit %v: %d rows after the transaction, want %d", commit, got, want)
		}
	}
	checkValues(t, pool, ring, map[int]int{0: 0, 5: 15, 9: 27})
}

// On a connection inside a transaction begun in SQL, Import does not COPY
// (a COPY that failed would abort that transaction) and does not end it.
func TestImportOnConnInSQLTransaction(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	ctx := context.Background()
	ring := testRing(t)
	if _, err := importer.Import(ctx, pool, ring, strings.NewReader(numbered(0, 3, 1)),
		importer.Options{}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := importer.Import(ctx, conn, ring, strings.NewReader(numbered(0, 6, 2)),
		importer.Options{BatchSize: 2}); err != nil {
		t.Fatalf("import: %v", err)
	}
	if got := count(t, conn); got != 6 {
		t.Errorf("%d rows inside the transaction, want 6", got)
	}
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if got := count(t, pool); got != 3 {
		t.Errorf("%d rows after ROLLBACK, want 3: Import ended the caller's transaction", got)
	}
}

// A connection of a pool that Import used for a COPY, successful or not,
// is clean afterwards: idle, not in a transaction.
func TestImportLeavesPoolConnectionsIdle(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	ring := testRing(t)
	for range 2 { // the second run's COPY fails on the first batch
		if _, err := importer.Import(ctx, pool, ring, strings.NewReader(numbered(0, 20, 1)),
			importer.Options{BatchSize: 5}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range pool.AcquireAllIdle(ctx) {
		if st := c.Conn().PgConn().TxStatus(); st != 'I' {
			t.Errorf("a pool connection is left in transaction status %q", st)
		}
		c.Release()
	}
}

// Two imports of the same names at once both succeed, whichever COPY
// loses.
func TestImportConcurrentSameNames(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ring := testRing(t)
	in := numbered(0, 200, 1)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = importer.Import(context.Background(), pool, ring, strings.NewReader(in),
				importer.Options{BatchSize: 50})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent imports: %v", err)
	}
	if got := count(t, pool); got != 200 {
		t.Errorf("%d rows, want 200", got)
	}
}

// The error names the first bad line of a batch, whether it fails to parse
// or to seal.
func TestImportReportsFirstBadLine(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	in := numbered(0, 2, 1) + `{"group":"","key":"k","value":1}` + "\n" + numbered(3, 4, 1) +
		`{"key":` + "\n"
	_, err := importer.Import(context.Background(), pool, testRing(t), strings.NewReader(in),
		importer.Options{})
	var le *importer.LineError
	if !errors.As(err, &le) || le.Line != 3 || !errors.Is(err, secrets.ErrInvalidArgument) {
		t.Fatalf("got %v; want the invalid group of line 3", err)
	}
	if got := count(t, pool); got != 0 {
		t.Errorf("%d rows, want none of the bad batch", got)
	}
}
