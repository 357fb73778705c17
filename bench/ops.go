package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// RawGetSQL is the raw read that Get is compared with.
const RawGetSQL = `SELECT value FROM secrets WHERE key = $1 AND "group" = $2 AND owner_id = $3`

// RawUpsertSQL is the raw write that Set is compared with: the statement
// of UpsertSecret in queries/secrets.sql.
const RawUpsertSQL = `INSERT INTO secrets (key, "group", owner_id, value)
VALUES ($1, $2, $3, $4)
ON CONFLICT (key, "group", owner_id)
DO UPDATE SET value = EXCLUDED.value, updated_at = now()`

// Latencies holds how long each operation of one kind took.
type Latencies []time.Duration

// Median returns the median duration, or 0 for no operations.
func (l Latencies) Median() time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Pair is one operation done through the facade and as a raw pgx
// statement, interleaved over the same pool.
type Pair struct {
	Facade, Raw Latencies
}

// Ratio returns the facade's median divided by the raw median.
func (p Pair) Ratio() float64 {
	return float64(p.Facade.Median()) / float64(p.Raw.Median())
}

// warmup is how many leading pairs of every interleaved run are not
// recorded: they fill the statement caches of the pool's connections.
func warmup(iterations int) int { return max(10, iterations/10) }

// interleave runs raw and facade in pairs on rows picked at random from
// the n seeded ones, each pair in the other order than the one before
// (raw first, then facade first, ...) so that neither gains from going
// first, and records iterations of each after a warm-up.
func interleave(iterations, n int, rng *rand.Rand,
	raw, facade func(i int) (time.Duration, error)) (Pair, error) {
	skip := warmup(iterations)
	p := Pair{Facade: make(Latencies, 0, iterations), Raw: make(Latencies, 0, iterations)}
	for it := range skip + iterations {
		ops := [2]func(int) (time.Duration, error){raw, facade}
		if it%2 == 1 {
			ops[0], ops[1] = facade, raw
		}
		var took [2]time.Duration
		for k, op := range ops {
			d, err := op(rng.IntN(n))
			if err != nil {
				return p, err
			}
			took[k] = d
		}
		if it%2 == 1 {
			took[0], took[1] = took[1], took[0]
		}
		if it >= skip {
			p.Raw = append(p.Raw, took[0])
			p.Facade = append(p.Facade, took[1])
		}
	}
	return p, nil
}

// GetVsRaw times Store.Get and a raw SELECT of the value, interleaved,
// and records iterations of each after a warm-up. Every value the facade
// returns is checked.
func (e *Env) GetVsRaw(ctx context.Context, iterations int, rng *rand.Rand) (Pair, error) {
	if e.rows == 0 {
		return Pair{}, fmt.Errorf("get: nothing seeded")
	}
	raw := func(i int) (time.Duration, error) {
		n := e.Data.Name(i)
		var value string
		start := time.Now()
		err := e.Pool.QueryRow(ctx, RawGetSQL, n.Key, n.Group, *n.Owner).Scan(&value)
		took := time.Since(start)
		if err != nil {
			return took, fmt.Errorf("raw get of row %d: %w", i, err)
		}
		return took, nil
	}
	facade := func(i int) (time.Duration, error) {
		n := e.Data.Name(i)
		start := time.Now()
		got, err := secrets.New(e.Old).Model(n.Group, *n.Owner).Get(ctx, e.Pool, n.Key)
		took := time.Since(start)
		if err != nil {
			return took, err
		}
		if s, ok := got.(string); !ok || s != e.Data.Value(i) {
			return took, fmt.Errorf("get of row %d read back a different value", i)
		}
		return took, nil
	}
	return interleave(iterations, e.rows, rng, raw, facade)
}

// SetVsRaw times Store.Set and a raw upsert (RawUpsertSQL) of a value
// sealed beforehand, interleaved, and records iterations of each after a
// warm-up. Both write the row's own value sealed with the old key, so the
// table stays as Seed made it, bar new IVs and updated_at.
func (e *Env) SetVsRaw(ctx context.Context, iterations int, rng *rand.Rand) (Pair, error) {
	if e.rows == 0 {
		return Pair{}, fmt.Errorf("set: nothing seeded")
	}
	raw := func(i int) (time.Duration, error) {
		n := e.Data.Name(i)
		v, err := e.Old.Seal(n, e.Data.JSON(i))
		if err != nil {
			return 0, err
		}
		start := time.Now()
		_, err = e.Pool.Exec(ctx, RawUpsertSQL, n.Key, n.Group, *n.Owner, v)
		took := time.Since(start)
		if err != nil {
			return took, fmt.Errorf("raw upsert of row %d: %w", i, err)
		}
		return took, nil
	}
	facade := func(i int) (time.Duration, error) {
		n := e.Data.Name(i)
		start := time.Now()
		err := secrets.New(e.Old).Model(n.Group, *n.Owner).Set(ctx, e.Pool, n.Key, e.Data.Value(i))
		return time.Since(start), err
	}
	return interleave(iterations, e.rows, rng, raw, facade)
}
