package schema_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/schema"
)

func tables(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		"SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "+
			"ORDER BY table_name")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	return names
}

func TestUpStatusDown(t *testing.T) {
	_, pool := pgtest.NewURL(t)
	ctx := context.Background()
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()

	res, err := schema.Up(ctx, db)
	if err != nil || len(res) != 1 {
		t.Fatalf("up: %d applied, %v; want 1", len(res), err)
	}
	want := []string{"secrets", schema.VersionTable}
	if diff := cmp.Diff(want, tables(t, pool)); diff != "" {
		t.Errorf("tables after up (-want +got):\n%s", diff)
	}

	// Again: nothing to do.
	if res, err := schema.Up(ctx, db); err != nil || len(res) != 0 {
		t.Fatalf("second up: %d applied, %v; want 0", len(res), err)
	}
	st, err := schema.Status(ctx, db)
	if err != nil || len(st) != 1 || st[0].State != goose.StateApplied {
		t.Fatalf("status: %+v, %v; want one applied migration", st, err)
	}

	if _, err := schema.Down(ctx, db); err != nil {
		t.Fatalf("down: %v", err)
	}
	if diff := cmp.Diff([]string{schema.VersionTable}, tables(t, pool)); diff != "" {
		t.Errorf("tables after down (-want +got):\n%s", diff)
	}
}

// Several application instances starting at once each migrate; the
// advisory lock makes them take turns, and all succeed.
func TestConcurrentUp(t *testing.T) {
	url, pool := pgtest.NewURL(t)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() {
			db, err := sql.Open("pgx", url)
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Close()
			_, errs[i] = schema.Up(context.Background(), db)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
	var applied int
	err := pool.QueryRow(context.Background(),
		"SELECT count(*) FROM "+schema.VersionTable+" WHERE version_id > 0").Scan(&applied)
	if err != nil || applied != 1 {
		t.Errorf("version table records %d applications (%v), want 1", applied, err)
	}
}

// The application's own goose history stays as it is.
func TestLeavesAppVersionTableAlone(t *testing.T) {
	_, pool := pgtest.NewURL(t)
	ctx := context.Background()
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()

	app := fstest(t, map[string]string{
		"00001_app.sql": "-- +goose Up\nCREATE TABLE app_users (id int);\n" +
			"-- +goose Down\nDROP TABLE app_users;\n",
	})
	p, err := goose.NewProvider(goose.DialectPostgres, db, app, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	before := appHistory(t, pool)

	if _, err := schema.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, appHistory(t, pool)); diff != "" {
		t.Errorf("the application's goose_db_version changed (-before +after):\n%s", diff)
	}
}

func appHistory(t *testing.T, pool *pgxpool.Pool) []int64 {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		"SELECT version_id FROM goose_db_version ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var v []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		v = append(v, id)
	}
	return v
}

// fstest writes files into a temporary directory and returns it.
func fstest(t *testing.T, files map[string]string) fs.FS {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return os.DirFS(dir)
}

// An application can copy the migration into its own goose directory
// instead, and run it with plain goose and its default version table.
func TestMigrationWorksCopiedIntoAppDirectory(t *testing.T) {
	_, pool := pgtest.NewURL(t)
	ctx := context.Background()
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()

	text, err := fs.ReadFile(schema.FS, "00001_create_secrets.sql")
	if err != nil {
		t.Fatal(err)
	}
	app := fstest(t, map[string]string{"20260101000000_create_secrets.sql": string(text)})
	p, err := goose.NewProvider(goose.DialectPostgres, db, app, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up with the copied file: %v", err)
	}
	want := []string{"goose_db_version", "secrets"}
	if diff := cmp.Diff(want, tables(t, pool)); diff != "" {
		t.Errorf("tables (-want +got):\n%s", diff)
	}
	if _, err := p.Down(ctx); err != nil {
		t.Fatalf("down with the copied file: %v", err)
	}
}

// The table enforces what the facade relies on: one global secret per key
// and group, and no negative owner.
func TestTableConstraints(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	ins := `INSERT INTO secrets (key, "group", owner_id, value) VALUES ('k', 'g', $1, 'v')`
	if _, err := pool.Exec(ctx, ins, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, ins, nil); err == nil {
		t.Errorf("a second global row with the same key and group was accepted")
	}
	if _, err := pool.Exec(ctx, ins, -1); err == nil {
		t.Errorf("a negative owner was accepted")
	}
	if _, err := pool.Exec(ctx, ins, 0); err != nil {
		t.Errorf("owner 0 beside the global row: %v", err)
	}
}

// Rolling back refuses to drop a table that holds secrets, unless the
// session setting sqlsecrets.allow_drop is on.
func TestDownRefusesWhileSecretsRemain(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO secrets (key, value) VALUES ('k', 'v')`); err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	if _, err := schema.Down(ctx, db); !errors.Is(err, schema.ErrNotEmpty) {
		t.Fatalf("down with a secret in the table: %v; want a refusal", err)
	}
	if diff := cmp.Diff([]string{"secrets", schema.VersionTable}, tables(t, pool)); diff != "" {
		t.Errorf("tables after a refused down (-want +got):\n%s", diff)
	}

	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["sqlsecrets.allow_drop"] = "on"
	forced, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer forced.Close()
	fdb := stdlib.OpenDBFromPool(forced)
	defer fdb.Close()
	if _, err := schema.Down(ctx, fdb); err != nil {
		t.Fatalf("down with sqlsecrets.allow_drop on: %v", err)
	}
}

// A database whose encoding is not UTF8 is refused: it would count name
// lengths in bytes and could cut names short.
func TestUpRefusesNonUTF8Database(t *testing.T) {
	base := pgtest.BaseURL(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	name := pgtest.SchemaName(t.Name())
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name+
		" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
	if err != nil {
		t.Fatalf("creating a SQL_ASCII database: %v", err)
	}
	defer admin.Exec(ctx, "DROP DATABASE "+name)

	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = name
	db := stdlib.OpenDB(*cfg)
	_, err = schema.Up(ctx, db)
	db.Close()
	if err == nil || !strings.Contains(err.Error(), "UTF8") {
		t.Fatalf("up on a SQL_ASCII database: %v; want a refusal naming UTF8", err)
	}
}
