package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// Fake master keys, one per generation.
const (
	keyA = "0123456789abcdef0123456789abcdef"
	keyB = "base64:QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="
	keyC = "4343434343434343434343434343434343434343434343434343434343434343"
)

func ring(t *testing.T, current string, previous ...string) *secrets.Keyring {
	t.Helper()
	r, err := secrets.NewKeyring(current, previous...)
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	return r
}

// seed writes n secrets under ring, spread over scopes, one by one so
// that ids follow the order token.0, token.1, ..., and returns the value
// each name should hold.
func seed(t *testing.T, pool *pgxpool.Pool, r *secrets.Keyring, n int) map[string]string {
	t.Helper()
	want := make(map[string]string, n)
	for i := range n {
		name := secrets.Name{Group: "users", Key: fmt.Sprintf("token.%d", i)}
		if i%3 != 0 {
			owner := int64(i % 5)
			name.Owner = &owner
		}
		v := fmt.Sprintf("value-%d", i)
		err := secrets.SetMany(context.Background(), pool, r, []secrets.Entry{{Name: name, Value: v}})
		if err != nil {
			t.Fatalf("seed: %v", err)
		}
		want[name.String()] = v
	}
	return want
}

// readAll reads every secret with r and returns the values by name.
func readAll(t *testing.T, pool *pgxpool.Pool, r *secrets.Keyring) map[string]string {
	t.Helper()
	ctx := context.Background()
	infos, err := secrets.ListAll(ctx, pool)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	got := make(map[string]string, len(infos))
	for _, in := range infos {
		s := secrets.New(r).Group(in.Name.Group).NoOwner()
		if in.Name.Owner != nil {
			s = s.Owner(*in.Name.Owner)
		}
		v, err := secrets.GetAs[string](ctx, s, pool, in.Name.Key)
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		got[in.Name.String()] = v
	}
	return got
}

func TestRotateInSmallBatches(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	want := seed(t, pool, ring(t, keyA), 23)

	var reports []rotation.Progress
	res, err := rotation.Rotate(ctx, pool, ring(t, keyB, keyA), rotation.Options{
		BatchSize: 5,
		Progress:  func(p rotation.Progress) { reports = append(reports, p) },
	})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if diff := cmp.Diff(rotation.Result{Rotated: 23}, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if len(reports) != 5 || reports[4].Done != 23 || reports[4].Total != 23 {
		t.Errorf("progress: got %d reports, last %+v; want 5 ending at 23 of 23",
			len(reports), reports[len(reports)-1])
	}

	// Only the new key is needed now.
	if !cmp.Equal(want, readAll(t, pool, ring(t, keyB))) {
		t.Errorf("values read back under the new key differ from those written")
	}
}

func TestRotateRerunSkipsDoneRows(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	seed(t, pool, ring(t, keyA), 12)
	r := ring(t, keyB, keyA)

	if _, err := rotation.Rotate(ctx, pool, r, rotation.Options{BatchSize: 4}); err != nil {
		t.Fatalf("first run: %v", err)
	}
	before := values(t, pool)
	res, err := rotation.Rotate(ctx, pool, r, rotation.Options{BatchSize: 4})
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if diff := cmp.Diff(rotation.Result{Skipped: 12}, res); diff != "" {
		t.Errorf("rerun result (-want +got):\n%s", diff)
	}
	if !cmp.Equal(before, values(t, pool)) {
		t.Errorf("a rerun rewrote rows that were already under the current key")
	}
}

// values returns the stored ciphertexts by id.
func values(t *testing.T, pool *pgxpool.Pool) map[int64]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT id, value FROM secrets")
	if err != nil {
		t.Fatal(err)
	}
	m := map[int64]string{}
	var id int64
	var v string
	_, err = pgx.ForEachRow(rows, []any{&id, &v}, func() error { m[id] = v; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRotateLeavesBadRowsAndReportsThem(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	seed(t, pool, ring(t, keyA), 10)
	// One row under a key the ring lacks, one altered.
	owner := int64(7)
	foreign := secrets.Name{Group: "orgs", Owner: &owner, Key: "foreign"}
	if err := secrets.New(ring(t, keyC)).Model("orgs", 7).Set(ctx, pool, "foreign", "x"); err != nil {
		t.Fatal(err)
	}
	var tamperedID int64
	err := pool.QueryRow(ctx, `UPDATE secrets SET value = value || 'A'
		WHERE id = (SELECT min(id) + 4 FROM secrets) RETURNING id`).Scan(&tamperedID)
	if err != nil {
		t.Fatal(err)
	}
	before := values(t, pool)

	res, err := rotation.Rotate(ctx, pool, ring(t, keyB, keyA), rotation.Options{BatchSize: 3})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if res.Rotated != 9 || res.Skipped != 0 || res.Failed != 2 {
		t.Fatalf("got rotated %d, skipped %d, failed %d; want 9, 0, 2",
			res.Rotated, res.Skipped, res.Failed)
	}
	byID := map[int64]rotation.Failure{}
	for _, f := range res.Failures {
		byID[f.ID] = f
	}
	if f, ok := byID[tamperedID]; !ok || !errors.Is(f.Err, secrets.ErrIntegrity) {
		t.Errorf("altered row %d: failure %+v, want ErrIntegrity", tamperedID, f)
	}
	var foreignFailure *rotation.Failure
	for _, f := range res.Failures {
		if f.Name.String() == foreign.String() {
			foreignFailure = &f
		}
	}
	if foreignFailure == nil || !errors.Is(foreignFailure.Err, secrets.ErrWrongKey) {
		t.Errorf("row under a foreign key: want a failure with ErrWrongKey, got %v", foreignFailure)
	}

	after := values(t, pool)
	for _, f := range res.Failures {
		if after[f.ID] != before[f.ID] {
			t.Errorf("failed row %d was changed", f.ID)
		}
	}
}

// hookDB passes every call through to a real database and runs before
// ahead of every batch write.
type hookDB struct {
	secrets.DBTX
	before func()
	writes int
	mu     sync.Mutex
}

func (h *hookDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if strings.Contains(sql, "name: SwapValues") {
		h.mu.Lock()
		h.writes++
		h.mu.Unlock()
		if h.before != nil {
			h.before()
		}
	}
	return h.DBTX.Query(ctx, sql, args...)
}

func (h *hookDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return h.DBTX.Exec(ctx, sql, args...)
}

func TestRotateKeepsConcurrentWrites(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writer string // the key the concurrent writer seals with
		delete bool
		want   rotation.Result
	}{
		{name: "writer on old key", writer: keyA, want: rotation.Result{Rotated: 6}},
		{name: "writer on new key", writer: keyB, want: rotation.Result{Rotated: 5, Skipped: 1}},
		{name: "row deleted", delete: true, want: rotation.Result{Rotated: 5, Skipped: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, pool := pgtest.Migrated(t)
			ctx := context.Background()
			seed(t, pool, ring(t, keyA), 6)
			// token.3 has no owner; it lands in the second batch of 3, and is
			// written between that batch's read and its write.
			db := &hookDB{DBTX: pool}
			db.before = func() {
				if db.writes != 2 {
					return
				}
				func() {
					var err error
					if tc.delete {
						_, err = secrets.New(ring(t, keyA)).Group("users").Delete(ctx, pool, "token.3")
					} else {
						s := secrets.New(ring(t, tc.writer)).Group("users")
						err = s.Set(ctx, pool, "token.3", "written during rotation")
					}
					if err != nil {
						t.Errorf("concurrent write: %v", err)
					}
				}()
			}

			res, err := rotation.Rotate(ctx, db, ring(t, keyB, keyA), rotation.Options{BatchSize: 3})
			if err != nil {
				t.Fatalf("rotate: %v", err)
			}
			if diff := cmp.Diff(tc.want, res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}

			got, err := secrets.GetAs[string](ctx, secrets.New(ring(t, keyB)).Group("users"),
				pool, "token.3")
			switch {
			case tc.delete && !errors.Is(err, secrets.ErrNotFound):
				t.Errorf("deleted row: got err %v, want ErrNotFound", err)
			case !tc.delete && err != nil:
				t.Errorf("concurrent write under the new key: %v", err)
			case !tc.delete && got != "written during rotation":
				t.Errorf("the concurrent write was lost")
			}
		})
	}
}

func TestRotateGivesUpOnRowThatKeepsChanging(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	seed(t, pool, ring(t, keyA), 3)
	old := secrets.New(ring(t, keyA)).Group("users")
	db := &hookDB{DBTX: pool, before: func() {
		if err := old.Set(ctx, pool, "token.0", "again"); err != nil {
			t.Errorf("concurrent write: %v", err)
		}
	}}

	res, err := rotation.Rotate(ctx, db, ring(t, keyB, keyA), rotation.Options{})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if res.Rotated != 2 || res.Failed != 1 || !errors.Is(res.Failures[0].Err, rotation.ErrChanged) {
		t.Fatalf("got %+v; want 2 rotated and token.0 failed with ErrChanged", res)
	}

	db.before = nil
	res, err = rotation.Rotate(ctx, db, ring(t, keyB, keyA), rotation.Options{})
	if err != nil || res.Rotated != 1 || res.Skipped != 2 {
		t.Fatalf("rerun: got %+v, %v; want 1 rotated, 2 skipped", res, err)
	}
	got, err := secrets.GetAs[string](ctx, secrets.New(ring(t, keyB)).Group("users"), pool, "token.0")
	if err != nil || got != "again" {
		t.Errorf("the last concurrent write did not survive (err %v)", err)
	}
}

// TestRotateWritesOneStatementPerBatch guards against the PHP original's
// defect 7: one UPDATE, and one round trip, per row.
func TestRotateWritesOneStatementPerBatch(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	seed(t, pool, ring(t, keyA), 10)
	db := &hookDB{DBTX: pool}

	res, err := rotation.Rotate(context.Background(), db, ring(t, keyB, keyA),
		rotation.Options{BatchSize: 4})
	if err != nil || res.Rotated != 10 {
		t.Fatalf("rotate: %+v, %v", res, err)
	}
	if db.writes != 3 {
		t.Errorf("10 rows in batches of 4 took %d write statements, want 3", db.writes)
	}
}

func TestRotateStopsOnCancelAndResumes(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	want := seed(t, pool, ring(t, keyA), 10)
	r := ring(t, keyB, keyA)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := rotation.Rotate(ctx, pool, r, rotation.Options{
		BatchSize: 4,
		Progress:  func(rotation.Progress) { cancel() },
	})
	var stop *rotation.StoppedError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &stop) {
		t.Fatalf("got err %v, want a StoppedError for context.Canceled", err)
	}
	// On a pool, a second batch may be written alongside the first.
	done := res.Rotated
	if (done != 4 && done != 8) || stop.Done != done ||
		!strings.Contains(err.Error(), fmt.Sprintf("stopped after %d rows", done)) {
		t.Errorf("got %+v, %q; want whole batches rotated and the error saying so", res, err)
	}

	res, err = rotation.Rotate(context.Background(), pool, r, rotation.Options{BatchSize: 4})
	if err != nil || res.Rotated != 10-done || res.Skipped != done {
		t.Fatalf("resumed: got %+v, %v; want the rest rotated and %d skipped", res, err, done)
	}
	if !cmp.Equal(want, readAll(t, pool, ring(t, keyB))) {
		t.Errorf("values differ after a cancelled and resumed rotation")
	}
}

func TestRotateSurvivesKilledConnection(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	ctx := context.Background()
	want := seed(t, pool, ring(t, keyA), 10)
	r := ring(t, keyB, keyA)

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pid := conn.PgConn().PID()
	_, err = rotation.Rotate(ctx, conn, r, rotation.Options{
		BatchSize: 3,
		Progress: func(rotation.Progress) {
			if _, err := pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
				t.Errorf("terminate: %v", err)
			}
		},
	})
	if err == nil || !strings.Contains(err.Error(), "stopped after 3 rows") {
		t.Fatalf("got err %v; want one saying it stopped after 3 rows", err)
	}

	res, err := rotation.Rotate(ctx, pool, r, rotation.Options{BatchSize: 3})
	if err != nil || res.Rotated != 7 || res.Skipped != 3 {
		t.Fatalf("rerun: got %+v, %v; want 7 rotated, 3 skipped", res, err)
	}
	if !cmp.Equal(want, readAll(t, pool, ring(t, keyB))) {
		t.Errorf("values differ after a killed connection and a rerun")
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	seed(t, pool, ring(t, keyA), 5)
	before := values(t, pool)

	res, err := rotation.Rotate(context.Background(), pool, ring(t, keyB, keyA),
		rotation.Options{DryRun: true})
	if err != nil || res.Rotated != 5 {
		t.Fatalf("dry run: got %+v, %v; want 5 to rotate", res, err)
	}
	if !cmp.Equal(before, values(t, pool)) {
		t.Errorf("a dry run changed stored values")
	}
}

func TestRotateKeyOriginalShape(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	want := seed(t, pool, ring(t, keyA), 8)

	res, err := rotation.RotateKey(context.Background(), pool, keyA, keyC, 3)
	if err != nil || res.Rotated != 8 {
		t.Fatalf("got %+v, %v; want 8 rotated", res, err)
	}
	if !cmp.Equal(want, readAll(t, pool, ring(t, keyC))) {
		t.Errorf("values differ after RotateKey")
	}

	if _, err := rotation.RotateKey(context.Background(), pool, keyA, keyA, 3); err == nil {
		t.Errorf("RotateKey with the same key twice: want an error")
	}
}

func TestVerifyCountsRowsPerKey(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	seed(t, pool, ring(t, keyA), 4)
	if err := secrets.New(ring(t, keyB)).Set(ctx, pool, "new", 1); err != nil {
		t.Fatal(err)
	}
	if err := secrets.New(ring(t, keyC)).Set(ctx, pool, "lost", 2); err != nil {
		t.Fatal(err)
	}

	rep, err := rotation.Verify(ctx, pool, ring(t, keyB, keyA), rotation.Options{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total != 6 || rep.Current != 1 || rep.Previous != 4 || rep.Unreadable != 1 {
		t.Errorf("got %+v; want total 6, current 1, previous 4, unreadable 1", rep)
	}
	if len(rep.Failures) != 1 || rep.Failures[0].Name.Key != "lost" ||
		!errors.Is(rep.Failures[0].Err, secrets.ErrWrongKey) {
		t.Errorf("failures: got %+v, want the row \"lost\" with ErrWrongKey", rep.Failures)
	}
}

func TestRejectsBadOptions(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	if _, err := rotation.Rotate(ctx, pool, ring(t, keyA), rotation.Options{BatchSize: -1}); err == nil {
		t.Errorf("negative batch size: want an error")
	}
	if _, err := rotation.Rotate(ctx, pool, nil, rotation.Options{}); !errors.Is(err,
		secrets.ErrInvalidArgument) {
		t.Errorf("nil keyring: got %v, want ErrInvalidArgument", err)
	}
}

// A cancel that lands while a batch is being written lets that batch
// finish, so the counts say exactly what was written.
func TestCancelDuringWriteFinishesTheBatch(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	seed(t, pool, ring(t, keyA), 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := &hookDB{DBTX: pool, before: cancel}

	res, err := rotation.Rotate(ctx, db, ring(t, keyB, keyA), rotation.Options{BatchSize: 4})
	var stop *rotation.StoppedError
	if !errors.As(err, &stop) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got err %v, want a StoppedError for context.Canceled", err)
	}
	if res.Rotated != 4 || stop.Done != 4 {
		t.Errorf("got %d rotated, stopped after %d; want the whole first batch of 4", res.Rotated, stop.Done)
	}
	rep, err := rotation.Verify(context.Background(), pool, ring(t, keyB, keyA), rotation.Options{})
	if err != nil || rep.Current != 4 || rep.Previous != 6 {
		t.Errorf("verify: %+v, %v; want 4 current, 6 previous", rep, err)
	}
}

// Rows in the PHP original's format are rotated to v1 only with legacy
// reads on; Verify counts them until none is left.
func TestRotateUpgradesLegacyRows(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	// A value the PHP original wrote for "secret123" under keyA.
	const php = "M2JhM2Y1ZjQzYjkyNjAyNjgzYzE5YWVlNjJhMjAzNDJiMDg0ZGQ1OTcxZGRkMzM4MDhk" +
		"ODFhMzI4ODc5YTU0NzbavpNMXYbeBiCkxLN1CH4zRFNVMFZlM2VNdlRmWWpZVi9yaGJBPT0="
	phpKey := "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	if _, err := pool.Exec(ctx, `INSERT INTO secrets (key, value) VALUES ('old', $1)`, php); err != nil {
		t.Fatal(err)
	}

	strict := ring(t, keyB, phpKey)
	rep, err := rotation.Verify(ctx, pool, strict, rotation.Options{})
	if err != nil || rep.Unreadable != 1 || !errors.Is(rep.Failures[0].Err, secrets.ErrLegacyFormat) {
		t.Fatalf("verify without legacy reads: %+v, %v; want the row unreadable as legacy", rep, err)
	}

	lenient := strict.WithLegacyReads()
	rep, err = rotation.Verify(ctx, pool, lenient, rotation.Options{})
	if err != nil || rep.Previous != 1 || rep.Legacy != 1 {
		t.Fatalf("verify with legacy reads: %+v, %v; want 1 previous, 1 legacy", rep, err)
	}
	if res, err := rotation.Rotate(ctx, pool, lenient, rotation.Options{}); err != nil || res.Rotated != 1 {
		t.Fatalf("rotate: %+v, %v; want 1 rotated", res, err)
	}
	got, err := secrets.GetAs[string](ctx, secrets.New(ring(t, keyB)), pool, "old")
	if err != nil || got != "secret123" {
		t.Errorf("after rotation the row does not read back under the new key alone (err %v)", err)
	}
}
