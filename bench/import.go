package bench

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sqlsecrets/sqlsecrets/importer"
)

// Truncate empties the secrets table, for a load into an empty table.
func (e *Env) Truncate(ctx context.Context) error {
	if _, err := e.Pool.Exec(ctx, "TRUNCATE secrets"); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	return nil
}

// Import times importer.Import of jsonl (from Data.JSONLines) with the old
// key and default options, into the table as it is: call Truncate first
// to load into an empty table. Restore puts the seeded rows back.
func (e *Env) Import(ctx context.Context, jsonl []byte) (Throughput, error) {
	start := time.Now()
	n, err := importer.Import(ctx, e.Pool, e.Old, bytes.NewReader(jsonl), importer.Options{})
	return Throughput{Rows: n, Elapsed: time.Since(start)}, err
}

// Sealed is rows of Data sealed with the old key, ready for CopySealed.
type Sealed struct {
	rows [][]any
}

// Len returns how many rows s holds.
func (s Sealed) Len() int { return len(s.rows) }

// Seal seals rows 0 to n-1 of Data with the old key, on every processor.
func (e *Env) Seal(n int) (Sealed, error) {
	s := startSealer(e.Data, e.Old, 0, n)
	defer s.close()
	rows, err := s.all()
	if err != nil {
		return Sealed{}, fmt.Errorf("sealing: %w", err)
	}
	return Sealed{rows}, nil
}

// CopySealed times a raw pgx CopyFrom of rows sealed beforehand: the least
// a program can do to load the same rows encrypted. It loads into the
// table as it is: call Truncate first. Restore puts the seeded rows back.
func (e *Env) CopySealed(ctx context.Context, s Sealed) (Throughput, error) {
	start := time.Now()
	copied, err := e.Pool.CopyFrom(ctx, pgx.Identifier{"secrets"}, copyColumns,
		pgx.CopyFromRows(s.rows))
	t := Throughput{Rows: copied, Elapsed: time.Since(start)}
	if err != nil {
		return t, fmt.Errorf("copy: %w", err)
	}
	return t, nil
}
