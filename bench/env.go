package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// Env is where the scenarios run: a pool whose connections use a schema
// holding the secrets table, the data that rows are made from, and two
// master keys. Its scenarios truncate and rewrite the secrets table, so
// the schema must hold nothing else of value. An Env is not safe for
// concurrent use.
type Env struct {
	Pool *pgxpool.Pool
	Data *Data

	// Old holds only the old key. Seed seals every row with it, and the
	// Set scenario writes with it, so the table stays under the old key.
	Old *secrets.Keyring

	// Ring holds the new key as current and the old one as previous: the
	// keyring of a deployment that is about to rotate.
	Ring *secrets.Keyring

	oldKey, newKey string
	rows           int

	// checkpoint is false once CHECKPOINT has been refused.
	checkpoint bool
}

// NewEnv returns an Env over pool and data with two fresh random keys.
func NewEnv(pool *pgxpool.Pool, data *Data) (*Env, error) {
	e := &Env{Pool: pool, Data: data, checkpoint: true}
	var err error
	if e.oldKey, err = secrets.GenerateKey(); err != nil {
		return nil, err
	}
	if e.newKey, err = secrets.GenerateKey(); err != nil {
		return nil, err
	}
	if e.Old, err = secrets.NewKeyring(e.oldKey); err != nil {
		return nil, err
	}
	if e.Ring, err = secrets.NewKeyring(e.newKey, e.oldKey); err != nil {
		return nil, err
	}
	return e, nil
}

// Rows returns how many rows the last Seed wrote.
func (e *Env) Rows() int { return e.rows }

// KeyEnv returns the environment variables from which
// secrets.KeyringFromEnv builds a keyring like Ring, for a child process.
// They hold key material: hand them to a child, never print them.
func (e *Env) KeyEnv() []string {
	return []string{
		secrets.EnvKey + "=" + e.newKey,
		secrets.EnvPreviousKeys + "=" + e.oldKey,
		secrets.EnvReadLegacy + "=false",
	}
}

// Checkpoints reports whether Seed and Restore could end with a
// CHECKPOINT, so that a scenario does not pay for writing out the pages
// they dirtied. It needs a superuser or the pg_checkpoint role.
func (e *Env) Checkpoints() bool { return e.checkpoint }

// Seed empties the secrets table and writes n rows, 0 to n-1 of Data,
// sealed with the old key: it seals them on every processor and loads
// them with COPY. It keeps a copy of the table in bench_seed for Restore,
// then vacuums and analyzes. It returns how long all that took.
func (e *Env) Seed(ctx context.Context, n int) (time.Duration, error) {
	start := time.Now()
	_, err := e.Pool.Exec(ctx, "TRUNCATE secrets RESTART IDENTITY; DROP TABLE IF EXISTS bench_seed")
	if err != nil {
		return 0, fmt.Errorf("seed: %w", err)
	}
	s := startSealer(e.Data, e.Old, 0, n)
	defer s.close()
	copied, err := e.Pool.CopyFrom(ctx, pgx.Identifier{"secrets"}, copyColumns, s.source())
	if err != nil {
		return 0, fmt.Errorf("seed: copy: %w", err)
	}
	if copied != int64(n) {
		return 0, fmt.Errorf("seed: copied %d rows, want %d", copied, n)
	}
	if _, err := e.Pool.Exec(ctx, "CREATE TABLE bench_seed AS SELECT * FROM secrets"); err != nil {
		return 0, fmt.Errorf("seed: copy table: %w", err)
	}
	e.rows = n
	if err := e.settle(ctx); err != nil {
		return 0, fmt.Errorf("seed: %w", err)
	}
	return time.Since(start), nil
}

// Restore puts back the rows of the last Seed, every one under the old
// key, with TRUNCATE and INSERT ... SELECT from bench_seed, then vacuums
// and analyzes. It returns how long that took.
func (e *Env) Restore(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	tag, err := e.Pool.Exec(ctx, "TRUNCATE secrets; INSERT INTO secrets SELECT * FROM bench_seed")
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	if tag.RowsAffected() != int64(e.rows) {
		return 0, fmt.Errorf("restore: %d rows, want %d", tag.RowsAffected(), e.rows)
	}
	if err := e.settle(ctx); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	return time.Since(start), nil
}

// settle vacuums and analyzes the table, so that every scenario starts
// from a table with its visibility map and hint bits set and fresh
// statistics, then checkpoints if it may.
func (e *Env) settle(ctx context.Context) error {
	if _, err := e.Pool.Exec(ctx, "VACUUM (ANALYZE) secrets"); err != nil {
		return err
	}
	if !e.checkpoint {
		return nil
	}
	_, err := e.Pool.Exec(ctx, "CHECKPOINT")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
		e.checkpoint = false
		return nil
	}
	return err
}
