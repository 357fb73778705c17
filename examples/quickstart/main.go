// Command quickstart uses sqlsecrets the way an application would, on the
// 5,000 sample records in testdata/sample-secrets.jsonl (all fake):
//
//  1. migrate: create the secrets table;
//  2. import every record, sealed with a first master key;
//  3. read every record back and compare it, byte for byte, with the file;
//  4. rotate every row to a fresh master key;
//  5. verify that every row is under the new key, and read everything back
//     again with only the new key.
//
// It needs DATABASE_URL. It works in a schema of its own,
// sqlsecrets_quickstart, which it drops and creates again on every run, so
// it never touches anything else in the database. Run it from the
// repository root:
//
//	./scripts/with-postgres go run ./examples/quickstart
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sqlsecrets/sqlsecrets/importer"
	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/schema"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

const schemaName = "sqlsecrets_quickstart"

func main() {
	file := flag.String("file", "testdata/sample-secrets.jsonl", "JSON Lines file to import")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	pool, err := connect(ctx)
	if err == nil {
		defer pool.Close()
		err = run(ctx, pool, *file, os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart: error:", err)
		stop()
		os.Exit(1)
	}
}

// run does the whole tour on pool, writing the summary to out and progress
// lines to errOut.
func run(ctx context.Context, pool *pgxpool.Pool, file string, out, errOut io.Writer) error {
	progress := func(what string, done, total int64) {
		if total < 0 {
			fmt.Fprintf(errOut, "%s: %d\n", what, done)
			return
		}
		fmt.Fprintf(errOut, "%s: %d/%d\n", what, done, total)
	}

	// Two master keys: the one the secrets are first sealed with, and the
	// one rotation moves them to. A real application reads SECRETS_KEY and
	// SECRETS_PREVIOUS_KEYS with secrets.KeyringFromEnv.
	oldKey, err := secrets.GenerateKey()
	if err != nil {
		return err
	}
	newKey, err := secrets.GenerateKey()
	if err != nil {
		return err
	}
	oldRing, err := secrets.NewKeyring(oldKey)
	if err != nil {
		return err
	}

	var sum summary
	step := sum.timer()
	db := stdlib.OpenDBFromPool(pool) // goose works on database/sql
	defer db.Close()
	if _, err := schema.Up(ctx, db); err != nil {
		return err
	}
	step("migrate", 0)

	in, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading sample records: %w", err)
	}
	n, err := importer.Import(ctx, pool, oldRing, bytes.NewReader(in), importer.Options{
		Progress: func(written int64) { progress("import", written, -1) },
	})
	if err != nil {
		return err
	}
	step("import", n)

	if err := compareAll(ctx, pool, oldRing, in); err != nil {
		return err
	}
	step("read back and compare", n)

	// Deploy the new key as current, the old one as previous, then rotate.
	ring, err := secrets.NewKeyring(newKey, oldKey)
	if err != nil {
		return err
	}
	res, err := rotation.Rotate(ctx, pool, ring, rotation.Options{
		Progress: func(p rotation.Progress) { progress("rotate", p.Done, p.Total) },
	})
	if err != nil {
		return err
	}
	if res.Failed > 0 {
		return fmt.Errorf("rotation: %d rows failed", res.Failed)
	}
	step("rotate", res.Rotated)

	// Once verify finds every row under the new key, the old key can go.
	newRing, err := secrets.NewKeyring(newKey)
	if err != nil {
		return err
	}
	rep, err := rotation.Verify(ctx, pool, newRing, rotation.Options{})
	if err != nil {
		return err
	}
	if rep.Current != rep.Total || rep.Total != n {
		return fmt.Errorf("verify: %d rows, %d under the new key, %d unreadable; want %d under it",
			rep.Total, rep.Current, rep.Unreadable, n)
	}
	step("verify", rep.Total)

	if err := compareAll(ctx, pool, newRing, in); err != nil {
		return err
	}
	step("read back with the new key only", n)

	sum.print(out)
	return nil
}

// connect opens a pool whose connections work in the quickstart's own
// schema, dropped and created afresh.
func connect(ctx context.Context) (*pgxpool.Pool, error) {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		return nil, errors.New("DATABASE_URL is not set; run ./scripts/with-postgres go run ./examples/quickstart")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("DATABASE_URL is not a valid connection string")
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schemaName

	admin, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	defer admin.Close(ctx)
	ident := pgx.Identifier{schemaName}.Sanitize()
	if _, err := admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+ident+" CASCADE; CREATE SCHEMA "+ident); err != nil {
		return nil, fmt.Errorf("preparing schema %s: %w", schemaName, err)
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// compareAll reads every record of the JSON Lines text in back from the
// database and checks that it holds exactly the value of the file, every
// digit and character included.
func compareAll(ctx context.Context, pool *pgxpool.Pool, ring *secrets.Keyring, in []byte) error {
	r := importer.NewReader(bytes.NewReader(in))
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}

		s := secrets.New(ring).Group(rec.Name.Group)
		if rec.Name.Owner != nil {
			s = s.Owner(*rec.Name.Owner)
		}
		got, err := s.GetJSON(ctx, pool, rec.Name.Key)
		if err != nil {
			return fmt.Errorf("line %d: %w", rec.Line, err)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, rec.Value); err != nil {
			return fmt.Errorf("line %d: %w", rec.Line, err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			return fmt.Errorf("line %d: %s reads back a different value", rec.Line, rec.Name)
		}
	}
}

// summary collects the time and row count of each step.
type summary struct {
	steps []stepTime
}

type stepTime struct {
	name string
	rows int64
	took time.Duration
}

// timer returns a function that records a step as taking the time since
// the previous call.
func (s *summary) timer() func(name string, rows int64) {
	start := time.Now()
	return func(name string, rows int64) {
		now := time.Now()
		s.steps = append(s.steps, stepTime{name, rows, now.Sub(start)})
		start = now
	}
}

func (s *summary) print(out io.Writer) {
	w := bufio.NewWriter(out)
	defer w.Flush()
	fmt.Fprintf(w, "\n%-34s %8s %10s %12s\n", "step", "rows", "time", "rows/s")
	for _, st := range s.steps {
		rate := "-"
		if st.rows > 0 {
			rate = fmt.Sprintf("%.0f", float64(st.rows)/st.took.Seconds())
		}
		fmt.Fprintf(w, "%-34s %8d %10s %12s\n", st.name, st.rows, st.took.Round(time.Millisecond), rate)
	}
	fmt.Fprintln(w, "\nall records read back exactly, under the old key and under the new one")
}
