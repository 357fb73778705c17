package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sqlsecrets/sqlsecrets/bench"
	"github.com/sqlsecrets/sqlsecrets/schema"
)

// cryptoSize is the size, in bytes of JSON, of the value that the seal
// and open benchmarks use.
const cryptoSize = 100

// bencher is one run of every scenario.
type bencher struct {
	cfg    config
	env    *bench.Env
	rep    *report
	stderr io.Writer
	setup  []setupTime // how long seeding and restoring took, for the notes
}

// run measures everything and prints the report to stdout.
func run(ctx context.Context, cfg config, stdout, stderr io.Writer) (err error) {
	began := time.Now()
	data, err := bench.OpenData(cfg.samples)
	if err != nil {
		return fmt.Errorf("%w (run from the repository root, or give -samples)", err)
	}
	poolCfg, err := poolConfig()
	if err != nil {
		return err
	}
	if err := resetSchema(ctx, poolCfg); err != nil {
		return err
	}
	if !cfg.keep {
		defer func() {
			if derr := dropSchema(poolCfg); derr != nil && err == nil {
				err = derr
			}
		}()
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer pool.Close()
	db := stdlib.OpenDBFromPool(pool)
	_, err = schema.Up(ctx, db)
	db.Close()
	if err != nil {
		return err
	}

	env, err := bench.NewEnv(pool, data)
	if err != nil {
		return err
	}
	b := &bencher{cfg: cfg, env: env, stderr: stderr, rep: &report{}}
	if b.rep.machine, err = machine(ctx, pool); err != nil {
		return err
	}
	if err := b.all(ctx); err != nil {
		return err
	}

	b.notes(data)
	b.rep.took = time.Since(began)
	text := b.rep.markdown()
	if _, err := io.WriteString(stdout, text); err != nil {
		return err
	}
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(text), 0o644); err != nil {
			return err
		}
	}
	progress(stderr, "done in %s", since(began))
	return nil
}

// all runs every scenario in turn.
func (b *bencher) all(ctx context.Context) error {
	b.crypto()
	idle, err := b.childRSS(ctx, "idle")
	if err != nil {
		return err
	}
	var rss []int64
	for _, n := range b.cfg.rows {
		if err := b.seed(ctx, n); err != nil {
			return err
		}
		if err := b.getSet(ctx, n); err != nil {
			return err
		}
		if err := b.rotate(ctx, n); err != nil {
			return err
		}
		kib, err := b.rotateRSS(ctx, n, idle)
		if err != nil {
			return err
		}
		rss = append(rss, kib)
	}
	for i := 1; i < len(rss); i++ {
		b.rep.add(row{
			scenario: "peak RSS growth of rotation",
			size:     fmt.Sprintf("%s ÷ %s", rowCount(b.cfg.rows[i]), rowCount(b.cfg.rows[0])),
			figure:   mib(rss[i]),
			baseline: mib(rss[0]),
			ratio:    ratio(float64(rss[i]) / float64(rss[0])),
		})
	}
	return b.load(ctx)
}

// crypto measures Keyring.Seal and Keyring.Open with testing.Benchmark.
func (b *bencher) crypto() {
	for _, c := range []struct {
		name string
		fn   func(*testing.B)
	}{
		{"seal (Keyring.Seal)", bench.SealBenchmark(b.env.Ring, cryptoSize)},
		{"open (Keyring.Open)", bench.OpenBenchmark(b.env.Ring, cryptoSize)},
	} {
		progress(b.stderr, "benchmarking %s of a %d-byte value", c.name, cryptoSize)
		r := testing.Benchmark(c.fn)
		b.rep.add(row{
			scenario: c.name + ", in process",
			size:     fmt.Sprintf("%d-byte value", cryptoSize),
			figure: fmt.Sprintf("%s ns/op, %s B/op, %d allocs/op",
				thousands(float64(r.T.Nanoseconds())/float64(r.N)),
				thousands(float64(r.AllocedBytesPerOp())), r.AllocsPerOp()),
			baseline: "—",
			ratio:    "—",
		})
	}
}

// seed fills the table with n rows under the old key.
func (b *bencher) seed(ctx context.Context, n int) error {
	progress(b.stderr, "seeding %s rows", rowCount(n))
	took, err := b.env.Seed(ctx, n)
	if err != nil {
		return err
	}
	b.setup = append(b.setup, setupTime{"seed", n, took})
	return nil
}

// restore puts the seeded rows back, and notes how long that took.
func (b *bencher) restore(ctx context.Context) error {
	took, err := b.env.Restore(ctx)
	if err != nil {
		return err
	}
	b.setup = append(b.setup, setupTime{"restore", b.env.Rows(), took})
	return nil
}

// getSet measures Get and Set beside their raw statements.
func (b *bencher) getSet(ctx context.Context, n int) error {
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	for _, s := range []struct {
		name, raw string
		run       func(context.Context, int, *rand.Rand) (bench.Pair, error)
	}{
		{"Get (Store.Get)", "raw SELECT", b.env.GetVsRaw},
		{"Set (Store.Set)", "raw upsert, pre-sealed", b.env.SetVsRaw},
	} {
		progress(b.stderr, "%s vs %s: %d of each on %s rows", s.name, s.raw,
			b.cfg.iterations, rowCount(n))
		p, err := s.run(ctx, b.cfg.iterations, rng)
		if err != nil {
			return err
		}
		b.rep.add(row{
			scenario: s.name + ", median of " + thousands(float64(b.cfg.iterations)),
			size:     rowCount(n) + " rows",
			figure:   micros(p.Facade.Median()),
			baseline: s.raw + ": " + micros(p.Raw.Median()),
			ratio:    ratio(p.Ratio()),
		})
	}
	return nil
}

// rotate measures rotation and its three baselines on n rows.
func (b *bencher) rotate(ctx context.Context, n int) error {
	type baseline struct {
		name string
		t    bench.Throughput
	}
	var bases []baseline
	for _, s := range []struct {
		name string
		run  func() (bench.Throughput, error)
	}{
		{"(a) one UPDATE", func() (bench.Throughput, error) { return b.env.RotateFloor(ctx) }},
		{"(b) keyset batches, no crypto", func() (bench.Throughput, error) {
			return b.env.RotateKeyset(ctx, bench.KeysetBatch)
		}},
		{fmt.Sprintf("(c) PHP algorithm, on %s rows", rowCount(min(b.cfg.phpRows, n))),
			func() (bench.Throughput, error) {
				return b.env.RotatePHP(ctx, b.cfg.phpRows, bench.PHPPage)
			}},
	} {
		if err := b.restore(ctx); err != nil {
			return err
		}
		progress(b.stderr, "rotating %s rows: %s", rowCount(n), s.name)
		t, err := s.run()
		if err != nil {
			return err
		}
		progress(b.stderr, "  %s rows/s", thousands(t.PerSecond()))
		bases = append(bases, baseline{s.name, t})
	}

	for _, w := range bench.RotationWorkers() {
		opts, err := bench.RotationOptions(w)
		if err != nil {
			return err
		}
		name := "rotation.Rotate, default options"
		if w > 0 {
			name = fmt.Sprintf("rotation.Rotate, Workers: %d", w)
		}
		if err := b.restore(ctx); err != nil {
			return err
		}
		progress(b.stderr, "rotating %s rows: %s", rowCount(n), name)
		t, err := b.env.RotateSqlsecrets(ctx, opts)
		if err != nil {
			return err
		}
		progress(b.stderr, "  %s rows/s", thousands(t.PerSecond()))
		for i, base := range bases {
			if w > 0 && i == len(bases)-1 {
				break // against the original's algorithm, default options say enough
			}
			b.rep.add(row{
				scenario: "rotate: " + name + " vs " + base.name,
				size:     rowCount(n) + " rows",
				figure:   rate(t),
				baseline: rate(base.t),
				ratio:    ratio(t.PerSecond() / base.t.PerSecond()),
			})
		}
	}
	return nil
}

// rotateRSS runs rotation of the n seeded rows in a child process and
// reports its peak resident set.
func (b *bencher) rotateRSS(ctx context.Context, n int, idle int64) (int64, error) {
	if err := b.restore(ctx); err != nil {
		return 0, err
	}
	kib, err := b.childRSS(ctx, "rotate")
	if err != nil {
		return 0, err
	}
	b.rep.add(row{
		scenario: "peak RSS of rotation.Rotate in a child process",
		size:     rowCount(n) + " rows",
		figure:   mib(kib),
		baseline: "idle child: " + mib(idle),
		ratio:    ratio(float64(kib) / float64(idle)),
	})
	return kib, nil
}

// childRSS runs this program again as the child mode and returns its
// peak RSS in KiB. The child rotates the rows that are in the table.
func (b *bencher) childRSS(ctx context.Context, mode string) (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	progress(b.stderr, "child process: %s", mode)
	cmd := exec.CommandContext(ctx, exe, "-child="+mode)
	cmd.Env = append(os.Environ(), b.env.KeyEnv()...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, b.stderr
	kib, err := bench.PeakRSS(cmd)
	if err != nil {
		return 0, fmt.Errorf("child %s: %w", mode, err)
	}
	var out childResult
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return 0, fmt.Errorf("child %s: reading its result: %w", mode, err)
	}
	if mode == "rotate" {
		if out.Rotated != int64(b.env.Rows()) {
			return 0, fmt.Errorf("child rotated %d rows, want %d", out.Rotated, b.env.Rows())
		}
		progress(b.stderr, "  %s rows/s, peak RSS %s", thousands(float64(out.Rotated)/out.Seconds),
			mib(kib))
	}
	return kib, nil
}

// load measures importer.Import beside a raw COPY of the same rows,
// sealed beforehand.
func (b *bencher) load(ctx context.Context) error {
	n := b.cfg.importRows
	jsonl, err := b.env.Data.JSONLines(n)
	if err != nil {
		return err
	}
	sealed, err := b.env.Seal(n)
	if err != nil {
		return err
	}
	if err := b.env.Truncate(ctx); err != nil {
		return err
	}
	progress(b.stderr, "importing %s rows from JSON Lines", rowCount(n))
	imp, err := b.env.Import(ctx, jsonl)
	if err != nil {
		return err
	}
	if err := b.env.Truncate(ctx); err != nil {
		return err
	}
	progress(b.stderr, "copying %s sealed rows", rowCount(n))
	raw, err := b.env.CopySealed(ctx, sealed)
	if err != nil {
		return err
	}
	b.rep.add(row{
		scenario: "import: importer.Import of JSON Lines vs COPY of rows sealed beforehand",
		size:     rowCount(n) + " rows",
		figure:   rate(imp),
		baseline: rate(raw),
		ratio:    ratio(imp.PerSecond() / raw.PerSecond()),
	})
	return nil
}

// poolConfig reads DATABASE_URL and points every connection at the
// benchmark's schema.
func poolConfig() (*pgxpool.Config, error) {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		return nil, errors.New("DATABASE_URL is not set; " +
			"run ./scripts/with-postgres go run ./cmd/sqlsecrets-bench")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("DATABASE_URL is not a valid connection string")
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schemaName
	// Rotation workers each take a connection of their own from the pool.
	cfg.MaxConns = max(cfg.MaxConns, int32(slices.Max(bench.RotationWorkers()))+2)
	return cfg, nil
}

// resetSchema drops the benchmark's schema, with everything in it, and
// creates it empty.
func resetSchema(ctx context.Context, cfg *pgxpool.Config) error {
	ident := pgx.Identifier{schemaName}.Sanitize()
	return admin(ctx, cfg, "DROP SCHEMA IF EXISTS "+ident+" CASCADE; CREATE SCHEMA "+ident)
}

// dropSchema drops the benchmark's schema, even after ctx was cancelled.
func dropSchema(cfg *pgxpool.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return admin(ctx, cfg, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schemaName}.Sanitize()+
		" CASCADE")
}

func admin(ctx context.Context, cfg *pgxpool.Config, sql string) error {
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("schema %s: %w", schemaName, err)
	}
	return nil
}
