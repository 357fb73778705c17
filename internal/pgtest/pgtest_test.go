package pgtest_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
)

var schemaPattern = regexp.MustCompile(`^t_([a-z0-9]+_)*[0-9a-f]{8}$`)

func TestSchemaName(t *testing.T) {
	for _, tc := range []struct{ test, prefix string }{
		{"TestPut", "t_testput_"},
		{"TestPut/replaces existing#01", "t_testput_replaces_existing_01_"},
		{"Test__Odd--Name__", "t_test_odd_name_"},
		{"Tést/ü", "t_t_st_"},
		{"", "t_"},
		{strings.Repeat("Abc/", 100), "t_abc_abc_abc_abc_abc_abc_abc_ab_"},
	} {
		got := pgtest.SchemaName(tc.test)
		if !strings.HasPrefix(got, tc.prefix) || !schemaPattern.MatchString(got) ||
			len(got) > 63 {
			t.Errorf("SchemaName(%q) = %q; want %q + 8 hex digits, at most 63 bytes",
				tc.test, got, tc.prefix)
		}
	}
	if a, b := pgtest.SchemaName("TestX"), pgtest.SchemaName("TestX"); a == b {
		t.Errorf("SchemaName returned %q twice; want a random suffix", a)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://alice:s3cr%2Ft@db:5432/app?sslmode=disable",
			"postgres://alice:xxxxx@db:5432/app?sslmode=disable"},
		{"postgresql://db/app?password=s3cret&sslpassword=k3y",
			"postgresql://db/app?password=xxxxx&sslpassword=xxxxx"},
		{"postgres://alice@db/app", "postgres://alice@db/app"},
		{"host=db password=s3cret user=alice", "host=db password=xxxxx user=alice"},
		{`host=db password = 'it\'s s3cret' user=alice`,
			"host=db password = xxxxx user=alice"},
		{"postgres://alice:s3cret@db:notaport/%zz", "(unparsable connection URL)"},
	} {
		got := pgtest.Redact(tc.in)
		if strings.Contains(got, "s3cr") || strings.Contains(got, "k3y") {
			t.Errorf("Redact(case %q) leaked a password", tc.want)
		} else if got != tc.want {
			t.Errorf("Redact(case %q) = %q", tc.want, got)
		}
	}
}

// currentSchema returns what SELECT current_schema() says on one of pool's connections.
func currentSchema(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var schema string
	if err := pool.QueryRow(t.Context(), "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatalf("current_schema(): %v", err)
	}
	return schema
}

func TestNewUsesOwnSchema(t *testing.T) {
	pool := pgtest.New(t)
	ctx := t.Context()

	schema := currentSchema(t, pool)
	if !strings.HasPrefix(schema, "t_testnewusesownschema_") || !schemaPattern.MatchString(schema) {
		t.Fatalf("current_schema() = %q; want t_testnewusesownschema_ + 8 hex digits", schema)
	}
	var searchPath string
	if err := pool.QueryRow(ctx, "SHOW search_path").Scan(&searchPath); err != nil {
		t.Fatal(err)
	}
	if searchPath != schema {
		t.Errorf("search_path = %q; want only %q", searchPath, schema)
	}

	// Unqualified names are created in, and resolve to, the test's schema.
	if _, err := pool.Exec(ctx, "CREATE TABLE secrets (name text PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "INSERT INTO secrets VALUES ('a')"); err != nil {
		t.Fatal(err)
	}
	var where string
	err := pool.QueryRow(ctx,
		"SELECT table_schema FROM information_schema.tables WHERE table_name = 'secrets'"+
			" AND table_schema = $1", schema).Scan(&where)
	if err != nil {
		t.Fatalf("table secrets not found in schema %s: %v", schema, err)
	}
}

func TestNewURLWithDatabaseSQL(t *testing.T) {
	connString, pool := pgtest.NewURL(t)
	ctx := t.Context()
	want := currentSchema(t, pool)

	db, err := sql.Open("pgx", connString)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // runs before pgtest's cleanup drops the schema

	var got string
	if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("*sql.DB current_schema() = %q; pool's is %q", got, want)
	}

	// What one creates unqualified, the other sees unqualified.
	if _, err := db.ExecContext(ctx, "CREATE TABLE secrets (n int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "INSERT INTO secrets VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT n FROM secrets").Scan(&n); err != nil || n != 7 {
		t.Fatalf("reading back through *sql.DB: n=%d err=%v", n, err)
	}
}

// The URL also works for libpq programs, such as a psql subprocess.
func TestNewURLWithPsql(t *testing.T) {
	connString, pool := pgtest.NewURL(t)
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql is not installed")
	}
	out, err := exec.CommandContext(t.Context(), psql, "-X", "-w", "-A", "-t",
		"-d", connString, "-c", "SELECT current_schema()").CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), currentSchema(t, pool); got != want {
		t.Errorf("psql current_schema() = %q; want %q", got, want)
	}
}

// The URL keeps options the base URL already had.
func TestNewURLKeepsOptions(t *testing.T) {
	base := pgtest.BaseURL(t)
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Skip("DATABASE_URL is not a postgres:// URL")
	}
	q := u.Query()
	q.Set("options", strings.TrimSpace(q.Get("options")+" -cstatement_timeout=54321"))
	u.RawQuery = q.Encode()
	t.Setenv("DATABASE_URL", u.String())

	_, pool := pgtest.NewURL(t)
	var timeout string
	if err := pool.QueryRow(t.Context(), "SHOW statement_timeout").Scan(&timeout); err != nil {
		t.Fatal(err)
	}
	if timeout != "54321ms" {
		t.Errorf("statement_timeout = %q; want the base URL's 54321ms", timeout)
	}
	if s := currentSchema(t, pool); !strings.HasPrefix(s, "t_testnewurlkeepsoptions_") {
		t.Errorf("current_schema() = %q; want the test's schema", s)
	}
}

func TestSchemaDroppedAfterTest(t *testing.T) {
	admin, err := pgx.Connect(t.Context(), pgtest.BaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	exists := func(schema string) bool {
		t.Helper()
		var ok bool
		err := admin.QueryRow(t.Context(),
			"SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&ok)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	var schema string
	t.Run("inner", func(t *testing.T) {
		pool := pgtest.New(t)
		schema = currentSchema(t, pool)
		if _, err := pool.Exec(t.Context(), "CREATE TABLE secrets (n int)"); err != nil {
			t.Fatal(err)
		}
		if !exists(schema) {
			t.Fatalf("schema %s does not exist during the test", schema)
		}
	})
	// The subtest has finished, so its cleanups have run.
	if schema == "" {
		t.Fatal("subtest did not report its schema")
	}
	if exists(schema) {
		t.Errorf("schema %s still exists after its test ended", schema)
	}
}

func TestParallelTestsAreIsolated(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			pool := pgtest.New(t)
			ctx := t.Context()
			schema := currentSchema(t, pool)
			mu.Lock()
			dup := seen[schema]
			seen[schema] = true
			mu.Unlock()
			if dup {
				t.Errorf("schema %s handed out twice", schema)
			}
			if _, err := pool.Exec(ctx, "CREATE TABLE secrets (n int)"); err != nil {
				t.Fatal(err)
			}
			if _, err := pool.Exec(ctx, "INSERT INTO secrets VALUES ($1)", i); err != nil {
				t.Fatal(err)
			}
			var count, n int
			err := pool.QueryRow(ctx, "SELECT count(*), max(n) FROM secrets").Scan(&count, &n)
			if err != nil || count != 1 || n != i {
				t.Errorf("secrets has %d rows, max %d (err %v); want just %d", count, n, err, i)
			}
		})
	}
}

// An unreachable server fails the tests when CI is true and skips them otherwise, and the
// message does not show the password. Runs this test binary again to observe that.
func TestUnreachableServer(t *testing.T) {
	if os.Getenv("PGTEST_UNREACHABLE_HELPER") == "1" {
		pgtest.New(t)
		t.Log("reached the server")
		return
	}
	// Port 1 on loopback: nothing listens there, so connecting fails at once.
	const unreachable = "postgres://alice:hunter2@127.0.0.1:1/x?sslmode=disable"
	for _, tc := range []struct {
		ci       string
		wantFail bool
		want     string
	}{
		{"true", true, "--- FAIL: TestUnreachableServer"},
		{"", false, "--- SKIP: TestUnreachableServer"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUnreachableServer$", "-test.v")
		cmd.Env = append(os.Environ(), "PGTEST_UNREACHABLE_HELPER=1", "CI="+tc.ci,
			"DATABASE_URL="+unreachable)
		out, err := cmd.CombinedOutput()
		failed := err != nil
		text := string(out)
		switch {
		case strings.Contains(text, "hunter2"):
			t.Errorf("CI=%q: output shows the password", tc.ci)
		case failed != tc.wantFail || !strings.Contains(text, tc.want):
			t.Errorf("CI=%q: exit error %v, output:\n%s\nwant %q", tc.ci, err, text, tc.want)
		case !strings.Contains(text, "no PostgreSQL at postgres://alice:xxxxx@127.0.0.1:1/x"):
			t.Errorf("CI=%q: message does not name the redacted URL; output:\n%s", tc.ci, text)
		}
	}
}
