// Package schema holds the sqlsecrets table migration and applies it with
// goose.
//
// The migration files are embedded in the binary, so a program migrates
// the same way whatever directory it runs in. Up, Down and Status keep
// their own version table, VersionTable, so they live beside an
// application's own goose history without touching it, and they hold a
// PostgreSQL advisory lock while they work, so that several instances of
// an application starting at once migrate one at a time.
//
// An application that prefers to run every migration from its own goose
// directory can copy the .sql files from this package into it instead;
// they are plain goose SQL migrations.
package schema

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// FS holds the migration files, named NNNNN_name.sql.
//
//go:embed *.sql
var FS embed.FS

// VersionTable is the table in which goose records the sqlsecrets
// migrations that have been applied.
const VersionTable = "sqlsecrets_goose_db_version"

// LockID is the PostgreSQL advisory lock that Up, Down and Status hold. It
// differs from goose's default, so an application's own goose runs do not
// wait for sqlsecrets and the other way around.
const LockID int64 = 0x73716c7365637273 // "sqlsecrs"

// NewProvider returns a goose provider for the embedded migrations, with
// VersionTable as its version table and LockID as its session lock. Up,
// Down and Status are shortcuts over it.
func NewProvider(db *sql.DB) (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(LockID),
		lock.WithLockTimeout(1, 300), // try every second for five minutes
	)
	if err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, FS,
		goose.WithTableName(VersionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return nil, fmt.Errorf("migration provider: %w", err)
	}
	return p, nil
}

// Up applies every migration that has not been applied yet and returns
// what it applied. It is safe to call at every start of an application.
func Up(ctx context.Context, db *sql.DB) ([]*goose.MigrationResult, error) {
	p, err := NewProvider(db)
	if err != nil {
		return nil, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate up: %w", err)
	}
	return res, nil
}

// ErrNotEmpty is returned by Down when rolling back would drop a secrets
// table that still holds secrets.
var ErrNotEmpty = errors.New("the secrets table holds secrets")

// notEmptyCode is the SQLSTATE that the Down migration raises when the
// table holds rows and sqlsecrets.allow_drop is not on.
const notEmptyCode = "SQS01"

// Down rolls back the most recent migration. Rolling back the first one
// drops the secrets table, so it refuses with ErrNotEmpty while the table
// holds any secret, unless the connection's session setting
// sqlsecrets.allow_drop is on (for pgx, RuntimeParams["sqlsecrets.allow_drop"]
// = "on").
func Down(ctx context.Context, db *sql.DB) (*goose.MigrationResult, error) {
	p, err := NewProvider(db)
	if err != nil {
		return nil, err
	}
	res, err := p.Down(ctx)
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == notEmptyCode {
		err = fmt.Errorf("%w: set sqlsecrets.allow_drop to on to drop it anyway", ErrNotEmpty)
	}
	if err != nil {
		return res, fmt.Errorf("migrate down: %w", err)
	}
	return res, nil
}

// Status reports each migration and whether it has been applied.
func Status(ctx context.Context, db *sql.DB) ([]*goose.MigrationStatus, error) {
	p, err := NewProvider(db)
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate status: %w", err)
	}
	return st, nil
}
