package importer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sqlsecrets/sqlsecrets/importer"
	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// a3Count returns the rows of the secrets table seen through db.
func a3Count(t *testing.T, db secrets.DBTX) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM secrets`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAttack3ImportFailedCopyInTx: a COPY that fails for another reason
// than an existing secret (here a trigger of the application's) inside
// the caller's pgx.Tx returns the error and leaves the transaction usable,
// holding the batches written before it.
func TestAttack3ImportFailedCopyInTx(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	ring := testRing(t)
	_, err := pool.Exec(ctx, `
		CREATE FUNCTION a3_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.key = 'k7' THEN RAISE EXCEPTION 'refused by the application'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER a3_refuse BEFORE INSERT ON secrets FOR EACH ROW EXECUTE FUNCTION a3_refuse();`)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	n, err := importer.Import(ctx, tx, ring, strings.NewReader(numbered(0, 10, 1)),
		importer.Options{BatchSize: 5})
	if err == nil || n != 5 {
		t.Fatalf("import: %d written, %v; want 5 and the trigger's error", n, err)
	}
	if got := a3Count(t, tx); got != 5 {
		t.Errorf("the transaction holds %d rows, want the first batch of 5", got)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit after a failed COPY: %v", err)
	}
	checkValues(t, pool, ring, map[int]int{0: 0, 1: 1, 2: 2, 3: 3, 4: 4})
}

// TestAttack3ImportKilledMidCopy terminates the import's backend while a
// COPY runs. The import fails, and the table holds whole batches only,
// each readable; a rerun on a new connection completes it.
func TestAttack3ImportKilledMidCopy(t *testing.T) {
	for _, via := range []string{"conn", "tx"} {
		t.Run(via, func(t *testing.T) {
			connString, pool := pgtest.Migrated(t)
			ctx := context.Background()
			ring := testRing(t)
			conn, err := pgx.Connect(ctx, connString)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			pid := conn.PgConn().PID()
			var db secrets.DBTX = conn
			if via == "tx" {
				tx, err := conn.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback(ctx)
				db = tx
			}

			// A watcher ends the backend as soon as it runs a COPY.
			killed := make(chan bool, 1)
			stop := make(chan struct{})
			go func() {
				for {
					select {
					case <-stop:
						killed <- false
						return
					default:
					}
					var ok bool
					err := pool.QueryRow(ctx, `SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
						WHERE pid = $1 AND state = 'active' AND query ILIKE 'copy%'`, int(pid)).Scan(&ok)
					if err == nil && ok {
						killed <- true
						return
					}
				}
			}()
			const batch = 500
			big := strings.Repeat("x", 3000)
			var in strings.Builder
			for i := range 3 * batch {
				fmt.Fprintf(&in, `{"group":"g","owner":%d,"key":"k%d","value":"%s%d"}`+"\n", i, i, big, i)
			}
			n, err := importer.Import(ctx, db, ring, strings.NewReader(in.String()),
				importer.Options{BatchSize: batch})
			close(stop)
			wasKilled := <-killed
			t.Logf("killed mid-COPY: %v; import wrote %d, err %v", wasKilled, n, err)
			if wasKilled && err == nil {
				t.Errorf("the import's backend was terminated during a COPY, and Import reported no error")
			}
			rows := a3Count(t, pool)
			if rows%batch != 0 || (via == "tx" && rows != 0) || int64(rows) < n && via == "conn" {
				t.Errorf("the table holds %d rows after the import wrote %d: not whole batches", rows, n)
			}
			if n, err := importer.Import(ctx, pool, ring, strings.NewReader(in.String()),
				importer.Options{BatchSize: batch}); err != nil || n != 3*batch {
				t.Fatalf("rerun: %d, %v", n, err)
			}
			if got := a3Count(t, pool); got != 3*batch {
				t.Errorf("after the rerun: %d rows", got)
			}
		})
	}
}

// TestAttack3ImportLimits: values at the size and depth limits import and
// read back; one byte or one level more is a line error naming the line,
// and nothing of its batch is written.
func TestAttack3ImportLimits(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	ring := testRing(t)
	atSize := `"` + strings.Repeat("s", secrets.MaxValueSize-2) + `"`
	overSize := `"` + strings.Repeat("s", secrets.MaxValueSize-1) + `"`
	atDepth := strings.Repeat("[", secrets.MaxValueDepth) + strings.Repeat("]", secrets.MaxValueDepth)
	overDepth := "[" + atDepth + "]"
	for _, tc := range []struct {
		name  string
		value string
		ok    bool
	}{
		{"at size", atSize, true},
		{"over size", overSize, false},
		{"at size with spaces", `"` + strings.Repeat("s", secrets.MaxValueSize-2) + `"   `, true},
		{"at depth", atDepth, true},
		{"over depth", overDepth, false},
		{"far over json's depth", strings.Repeat("[", 10001) + strings.Repeat("]", 10001), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := strings.ReplaceAll(tc.name, " ", "_")
			in := fmt.Sprintf(`{"key":"first-%s","value":1}`+"\n"+`{"key":"%s","value":%s}`+"\n", key, key, tc.value)
			n, err := importer.Import(ctx, pool, ring, strings.NewReader(in), importer.Options{})
			if tc.ok {
				if err != nil || n != 2 {
					t.Fatalf("import: %d, %v", n, err)
				}
				got, err := secrets.New(ring).GetJSON(ctx, pool, key)
				if err != nil || strings.TrimSpace(tc.value) != string(got) {
					t.Errorf("read back: %v, or the value differs", err)
				}
				return
			}
			var le *importer.LineError
			if !errors.As(err, &le) || le.Line != 2 || n != 0 {
				t.Fatalf("import: %d, %v; want a LineError for line 2 and nothing written", n, err)
			}
			if _, err := secrets.New(ring).Get(ctx, pool, "first-"+key); !errors.Is(err, secrets.ErrNotFound) {
				t.Errorf("the batch of the bad line was written in part: %v", err)
			}
		})
	}
}
