package secrets_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// benchValue is a string value whose JSON text is 100 bytes.
var benchValue = strings.Repeat("x", 98)

func benchName() secrets.Name {
	return secrets.Name{Group: "users", Owner: ptr(42), Key: "api_token"}
}

func BenchmarkKeyringSeal(b *testing.B) {
	ring := benchRing(b)
	n, pt := benchName(), []byte(`"`+benchValue+`"`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ring.Seal(n, pt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKeyringOpen(b *testing.B) {
	ring := benchRing(b)
	n := benchName()
	stored, err := ring.Seal(n, []byte(`"`+benchValue+`"`))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ring.Open(n, stored); err != nil {
			b.Fatal(err)
		}
	}
}

// benchRows is how many rows the database benchmarks read from.
const benchRows = 200

// seededStore returns a pool holding benchRows secrets, key "k<i>" of
// owner i in group "users", each benchValue.
func seededStore(b *testing.B) (*secrets.Keyring, secrets.DBTX) {
	b.Helper()
	_, pool := pgtest.Migrated(b)
	ring := benchRing(b)
	entries := make([]secrets.Entry, benchRows)
	for i := range entries {
		entries[i] = secrets.Entry{
			Name:  secrets.Name{Group: "users", Owner: ptr(int64(i)), Key: "k" + strconv.Itoa(i)},
			Value: benchValue,
		}
	}
	if err := secrets.SetMany(context.Background(), pool, ring, entries); err != nil {
		b.Fatal(err)
	}
	return ring, pool
}

func BenchmarkStoreGet(b *testing.B) {
	ring, db := seededStore(b)
	ctx, rng := context.Background(), rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		i := rng.IntN(benchRows)
		v, err := secrets.New(ring).Model("users", int64(i)).Get(ctx, db, "k"+strconv.Itoa(i))
		if err != nil {
			b.Fatal(err)
		}
		if v != benchValue {
			b.Fatal("read back a different value")
		}
	}
}

func BenchmarkStoreGetJSON(b *testing.B) {
	ring, db := seededStore(b)
	ctx, rng := context.Background(), rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		i := rng.IntN(benchRows)
		s := secrets.New(ring).Model("users", int64(i))
		if _, err := s.GetJSON(ctx, db, "k"+strconv.Itoa(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreGetRaw is the floor for BenchmarkStoreGet: the raw SELECT
// of the same rows through the same pool, without opening the value.
func BenchmarkStoreGetRaw(b *testing.B) {
	_, db := seededStore(b)
	ctx, rng := context.Background(), rand.New(rand.NewPCG(1, 2))
	const q = `SELECT value FROM secrets WHERE key = $1 AND "group" = $2 AND owner_id = $3`
	var value string
	b.ReportAllocs()
	for b.Loop() {
		i := rng.IntN(benchRows)
		err := db.QueryRow(ctx, q, "k"+strconv.Itoa(i), "users", int64(i)).Scan(&value)
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreGetVsRaw alternates Store.Get and the raw SELECT of
// BenchmarkStoreGetRaw on the same pool, one of each per iteration, and
// reports the median of each and their ratio: the overhead of Get, less
// swayed by the load of the machine than two separate benchmarks.
func BenchmarkStoreGetVsRaw(b *testing.B) {
	ring, db := seededStore(b)
	ctx, rng := context.Background(), rand.New(rand.NewPCG(1, 2))
	const q = `SELECT value FROM secrets WHERE key = $1 AND "group" = $2 AND owner_id = $3`
	var getTimes, rawTimes []time.Duration
	var value string
	for b.Loop() {
		i := rng.IntN(benchRows)
		start := time.Now()
		err := db.QueryRow(ctx, q, "k"+strconv.Itoa(i), "users", int64(i)).Scan(&value)
		rawTimes = append(rawTimes, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}

		i = rng.IntN(benchRows)
		start = time.Now()
		_, err = secrets.New(ring).Model("users", int64(i)).Get(ctx, db, "k"+strconv.Itoa(i))
		getTimes = append(getTimes, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
	}
	get, raw := median(getTimes), median(rawTimes)
	b.ReportMetric(float64(get.Nanoseconds()), "get-ns")
	b.ReportMetric(float64(raw.Nanoseconds()), "raw-ns")
	b.ReportMetric(float64(get)/float64(raw), "get/raw")
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)/2]
}

func benchRing(b *testing.B) *secrets.Keyring {
	b.Helper()
	r, err := secrets.NewKeyring(hexKey)
	if err != nil {
		b.Fatal(err)
	}
	return r
}
