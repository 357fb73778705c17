package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sqlsecrets/sqlsecrets/schema"
)

// Migrated is NewURL with the sqlsecrets table already created in the
// test's schema by schema.Up.
func Migrated(t testing.TB) (connString string, pool *pgxpool.Pool) {
	t.Helper()
	connString, pool = NewURL(t)

	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	if _, err := schema.Up(context.Background(), db); err != nil {
		t.Fatalf("pgtest: migrating: %v", err)
	}
	return connString, pool
}
