package bench

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// benchRows is the size of the table that the benchmarks work on.
const benchRows = 1000

var (
	dataOnce sync.Once
	data     *Data
	dataErr  error
)

// testData returns the rows made from the project's sample records.
func testData(tb testing.TB) *Data {
	tb.Helper()
	dataOnce.Do(func() { data, dataErr = OpenData("../testdata/sample-secrets.jsonl") })
	if dataErr != nil {
		tb.Fatal(dataErr)
	}
	return data
}

// seeded returns an Env in a fresh schema of its own with rows rows.
func seeded(tb testing.TB, rows int) *Env {
	tb.Helper()
	_, pool := pgtest.Migrated(tb)
	e, err := NewEnv(pool, testData(tb))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.Seed(context.Background(), rows); err != nil {
		tb.Fatal(err)
	}
	return e
}

func TestData(t *testing.T) {
	d := testData(t)
	if d.Samples() < 1000 {
		t.Fatalf("%d samples, want the 5,000 of testdata", d.Samples())
	}
	seen := map[string]bool{}
	for i := range 3 * d.Samples() {
		n := d.Name(i)
		if seen[n.String()] {
			t.Fatalf("row %d: name %s twice", i, n)
		}
		seen[n.String()] = true
		if v := d.Value(i); !utf8.ValidString(v) || utf8.RuneCountInString(v) != ValueChars {
			t.Fatalf("row %d: value of %d characters, want %d",
				i, utf8.RuneCountInString(v), ValueChars)
		}
	}
	if m := d.MeanJSONBytes(); m < ValueChars {
		t.Errorf("mean JSON size %.0f bytes, want at least %d", m, ValueChars)
	}
}

// TestWorkersKnob fails once rotation.Options has a Workers field that
// setWorkers does not set yet: then the benchmark should measure it.
func TestWorkersKnob(t *testing.T) {
	f, has := reflect.TypeFor[rotation.Options]().FieldByName("Workers")
	wired := setWorkers(&rotation.Options{}, 2)
	switch {
	case has && !wired:
		t.Fatalf("rotation.Options has Workers %s: make setWorkers set it", f.Type)
	case !has && wired:
		t.Fatal("setWorkers claims a knob that rotation.Options lacks")
	}
	if _, err := RotationOptions(0); err != nil {
		t.Errorf("default options: %v", err)
	}
}

// TestRunners runs every scenario once on a small table, so that the
// code is exercised by the normal test run. It times nothing.
func TestRunners(t *testing.T) {
	const rows = 100
	ctx := context.Background()
	e := seeded(t, rows)
	rng := rand.New(rand.NewPCG(1, 2))

	for name, run := range map[string]func(context.Context, int, *rand.Rand) (Pair, error){
		"get": e.GetVsRaw, "set": e.SetVsRaw,
	} {
		p, err := run(ctx, 5, rng)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(p.Facade) != 5 || len(p.Raw) != 5 || p.Facade.Median() <= 0 {
			t.Errorf("%s: %d facade and %d raw timings, want 5 each",
				name, len(p.Facade), len(p.Raw))
		}
	}

	for name, run := range map[string]func() (Throughput, error){
		"floor":  func() (Throughput, error) { return e.RotateFloor(ctx) },
		"keyset": func() (Throughput, error) { return e.RotateKeyset(ctx, 30) },
		"rotate": func() (Throughput, error) { return e.RotateSqlsecrets(ctx, rotation.Options{}) },
	} {
		if _, err := e.Restore(ctx); err != nil {
			t.Fatal(err)
		}
		if got, err := run(); err != nil || got.Rows != rows {
			t.Errorf("%s: %d rows, %v; want %d rows", name, got.Rows, err, rows)
		}
	}

	if _, err := e.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := e.RotatePHP(ctx, 50, 20); err != nil || got.Rows != 50 {
		t.Errorf("php: %d rows, %v; want 50", got.Rows, err)
	}
	// The PHP pages are spread over the table: the rows they rotated open
	// with the new key alone, and the rest need the old one.
	newOnly, err := secrets.NewKeyring(e.newKey)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := rotation.Verify(ctx, e.Pool, newOnly, rotation.Options{})
	if err != nil || rep.Current != 50 || rep.Unreadable != rows-50 {
		t.Errorf("after php: %d current, %d unreadable, %v; want 50 and %d",
			rep.Current, rep.Unreadable, err, rows-50)
	}

	jsonl, err := e.Data.JSONLines(rows)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Truncate(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := e.Import(ctx, jsonl); err != nil || got.Rows != rows {
		t.Errorf("import: %d rows, %v; want %d", got.Rows, err, rows)
	}
	sealed, err := e.Seal(rows)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Truncate(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := e.CopySealed(ctx, sealed); err != nil || got.Rows != rows {
		t.Errorf("copy: %d rows, %v; want %d", got.Rows, err, rows)
	}
}

func TestPeakRSS(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" {
		t.Skip("no peak RSS here")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	kib, err := PeakRSS(exec.Command(exe, "-test.run=^$"))
	if err != nil || kib <= 0 {
		t.Fatalf("PeakRSS = %d KiB, %v; want a positive size", kib, err)
	}
}

func BenchmarkGet(b *testing.B) {
	e := seeded(b, benchRows)
	ctx, rng := context.Background(), rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		n := e.Data.Name(rng.IntN(benchRows))
		store := secrets.New(e.Old).Model(n.Group, *n.Owner)
		if _, err := store.Get(ctx, e.Pool, n.Key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetRaw(b *testing.B) {
	e := seeded(b, benchRows)
	ctx, rng := context.Background(), rand.New(rand.NewPCG(1, 2))
	var value string
	for b.Loop() {
		n := e.Data.Name(rng.IntN(benchRows))
		err := e.Pool.QueryRow(ctx, RawGetSQL, n.Key, n.Group, *n.Owner).Scan(&value)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSet(b *testing.B) {
	e := seeded(b, benchRows)
	ctx, rng := context.Background(), rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		i := rng.IntN(benchRows)
		n := e.Data.Name(i)
		err := secrets.New(e.Old).Model(n.Group, *n.Owner).Set(ctx, e.Pool, n.Key, e.Data.Value(i))
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetRaw upserts values sealed before the timer starts, each
// row's own, reused when a row comes round again.
func BenchmarkSetRaw(b *testing.B) {
	e := seeded(b, benchRows)
	ctx, rng := context.Background(), rand.New(rand.NewPCG(1, 2))
	sealed := make([]string, benchRows)
	for i := range sealed {
		var err error
		if sealed[i], err = e.Old.Seal(e.Data.Name(i), e.Data.JSON(i)); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		i := rng.IntN(benchRows)
		n := e.Data.Name(i)
		_, err := e.Pool.Exec(ctx, RawUpsertSQL, n.Key, n.Group, *n.Owner, sealed[i])
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	ring, err := secrets.NewKeyring("0123456789abcdef0123456789abcdef")
	if err != nil {
		b.Fatal(err)
	}
	SealBenchmark(ring, 100)(b)
}

func BenchmarkOpen(b *testing.B) {
	ring, err := secrets.NewKeyring("0123456789abcdef0123456789abcdef")
	if err != nil {
		b.Fatal(err)
	}
	OpenBenchmark(ring, 100)(b)
}

// benchRotation times run on a table of benchRows rows restored, untimed,
// before every run, and reports rows/s.
func benchRotation(b *testing.B, run func(context.Context, *Env) (Throughput, error)) {
	e := seeded(b, benchRows)
	ctx := context.Background()
	var rows int64
	for b.Loop() {
		b.StopTimer()
		if _, err := e.Restore(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t, err := run(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		rows += t.Rows
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkRotate1000(b *testing.B) {
	benchRotation(b, func(ctx context.Context, e *Env) (Throughput, error) {
		return e.RotateSqlsecrets(ctx, rotation.Options{})
	})
}

func BenchmarkRotate1000Floor(b *testing.B) {
	benchRotation(b, func(ctx context.Context, e *Env) (Throughput, error) {
		return e.RotateFloor(ctx)
	})
}

func BenchmarkRotate1000Keyset(b *testing.B) {
	benchRotation(b, func(ctx context.Context, e *Env) (Throughput, error) {
		return e.RotateKeyset(ctx, KeysetBatch)
	})
}

// BenchmarkRotate1000PHP rotates every row of the table, one commit each.
func BenchmarkRotate1000PHP(b *testing.B) {
	benchRotation(b, func(ctx context.Context, e *Env) (Throughput, error) {
		return e.RotatePHP(ctx, benchRows, PHPPage)
	})
}

// benchLoad times load into an emptied table and reports rows/s.
func benchLoad(b *testing.B, e *Env, load func(context.Context) (Throughput, error)) {
	ctx := context.Background()
	var rows int64
	for b.Loop() {
		b.StopTimer()
		if err := e.Truncate(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t, err := load(ctx)
		if err != nil {
			b.Fatal(err)
		}
		rows += t.Rows
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkImport1000(b *testing.B) {
	e := seeded(b, 0)
	jsonl, err := e.Data.JSONLines(benchRows)
	if err != nil {
		b.Fatal(err)
	}
	benchLoad(b, e, func(ctx context.Context) (Throughput, error) { return e.Import(ctx, jsonl) })
}

func BenchmarkImport1000Copy(b *testing.B) {
	e := seeded(b, 0)
	sealed, err := e.Seal(benchRows)
	if err != nil {
		b.Fatal(err)
	}
	benchLoad(b, e, func(ctx context.Context) (Throughput, error) {
		return e.CopySealed(ctx, sealed)
	})
}
