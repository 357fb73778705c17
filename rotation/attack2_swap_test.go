package rotation_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

func TestAttack2TxWritersAgainstWorkers(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	old := ring(t, keyA)
	newR := ring(t, keyB, keyA)
	want := spread(t, pool, 120)
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := (i*4 + w) % 120
				name := secrets.Name{Group: "users", Key: fmt.Sprintf("token.%d", k)}
				if k%3 != 0 {
					o := int64(k % 5)
					name.Owner = &o
				}
				tx, err := pool.Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				v := fmt.Sprintf("tx%d-%d", w, i)
				rg := old
				if i%2 == 0 {
					rg = newR
				}
				if err := secrets.SetMany(ctx, tx, rg, []secrets.Entry{{Name: name, Value: v}}); err != nil {
					t.Error(err)
					tx.Rollback(ctx)
					return
				}
				time.Sleep(3 * time.Millisecond)
				if i%3 == 0 {
					tx.Rollback(ctx)
					continue
				}
				if err := tx.Commit(ctx); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want[name.String()] = v
				mu.Unlock()
			}
		})
	}
	var res rotation.Result
	var err error
	for range 3 {
		res, err = rotation.Rotate(ctx, pool, newR, rotation.Options{Workers: 3, BatchSize: 4})
		t.Logf("run: %+v %v", res, err)
	}
	close(stop)
	wg.Wait()
	res, err = rotation.Rotate(ctx, pool, newR, rotation.Options{Workers: 3, BatchSize: 4})
	if err != nil || res.Failed != 0 {
		t.Errorf("final run: %+v %v", res, err)
	}
	rep, err := rotation.Verify(ctx, pool, ring(t, keyB), rotation.Options{Workers: 2})
	if err != nil || rep.Current != 120 || rep.Total != 120 {
		t.Errorf("verify: %+v %v", rep, err)
	}
	got := readAll(t, pool, ring(t, keyB))
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s lost its last committed write", k)
		}
	}
	if n := advisoryHeld(t, pool); n != 0 {
		t.Errorf("%d advisory locks left", n)
	}
}
