package rotation_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// spread seeds n rows and moves their ids apart, so that they fall into
// many of the 10,000-id chunks that workers claim, some below zero.
func spread(t *testing.T, pool *pgxpool.Pool, n int) map[string]string {
	t.Helper()
	want := seed(t, pool, ring(t, keyA), n)
	if _, err := pool.Exec(context.Background(),
		"UPDATE secrets SET id = (id - 10) * 7919"); err != nil {
		t.Fatal(err)
	}
	return want
}

func TestWorkersRotateEveryRowOnce(t *testing.T) {
	for _, workers := range []int{1, 2, 4} {
		_, pool := pgtest.Migrated(t)
		want := spread(t, pool, 60)

		res, err := rotation.Rotate(context.Background(), pool, ring(t, keyB, keyA),
			rotation.Options{BatchSize: 3, Workers: workers})
		if err != nil || res.Rotated != 60 || res.Skipped != 0 || res.Failed != 0 {
			t.Fatalf("%d workers: %+v, %v; want 60 rotated", workers, res, err)
		}
		if !cmp.Equal(want, readAll(t, pool, ring(t, keyB))) {
			t.Errorf("%d workers: values differ after rotation", workers)
		}
		rep, err := rotation.Verify(context.Background(), pool, ring(t, keyB),
			rotation.Options{Workers: workers})
		if err != nil || rep.Total != 60 || rep.Current != 60 {
			t.Errorf("%d workers: verify %+v, %v; want 60 current", workers, rep, err)
		}
	}
}

// Two processes' runs (here two pools, so two sets of sessions) share the
// table through their chunk claims: together they rotate each row once.
func TestWorkersOfTwoRunsShareTheTable(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	want := spread(t, pool, 80)
	other, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	var wg sync.WaitGroup
	results := make([]rotation.Result, 2)
	errs := make([]error, 2)
	for i, p := range []*pgxpool.Pool{pool, other} {
		wg.Go(func() {
			results[i], errs[i] = rotation.Rotate(context.Background(), p, ring(t, keyB, keyA),
				rotation.Options{BatchSize: 2, Workers: 2})
		})
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("runs: %v, %v", errs[0], errs[1])
	}
	if got := results[0].Rotated + results[1].Rotated; got != 80 {
		t.Errorf("the two runs rotated %d rows together, want 80 (%+v)", got, results)
	}
	if !cmp.Equal(want, readAll(t, pool, ring(t, keyB))) {
		t.Errorf("values differ after two runs at once")
	}
}

func TestWorkersStopOnCancelAndResume(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	want := spread(t, pool, 40)
	r := ring(t, keyB, keyA)

	ctx, cancel := context.WithCancel(context.Background())
	res, err := rotation.Rotate(ctx, pool, r, rotation.Options{
		BatchSize: 2, Workers: 2,
		Progress: func(p rotation.Progress) {
			if p.Done >= 10 {
				cancel()
			}
		},
	})
	var stop *rotation.StoppedError
	if !errors.As(err, &stop) || !errors.Is(err, context.Canceled) || stop.Done != res.Rotated {
		t.Fatalf("got %+v, %v; want a StoppedError whose count matches the rotated rows", res, err)
	}

	again, err := rotation.Rotate(context.Background(), pool, r,
		rotation.Options{BatchSize: 2, Workers: 2})
	if err != nil || again.Rotated+res.Rotated != 40 {
		t.Fatalf("resumed: %+v, %v; want the remaining %d rotated", again, err, 40-res.Rotated)
	}
	if !cmp.Equal(want, readAll(t, pool, ring(t, keyB))) {
		t.Errorf("values differ after a cancelled and resumed run with workers")
	}
}

func TestWorkersNeedAPool(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	_, err = rotation.Rotate(ctx, tx, ring(t, keyA), rotation.Options{Workers: 2})
	if !errors.Is(err, secrets.ErrInvalidArgument) {
		t.Errorf("workers over a transaction: %v; want ErrInvalidArgument", err)
	}
}
