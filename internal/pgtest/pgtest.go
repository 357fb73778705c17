// Package pgtest gives each database test a fresh, empty PostgreSQL schema of its own.
//
// Tests call [New] (or [NewURL] when they also need a connection string) and get a pool whose
// connections see only that schema: unqualified names such as "secrets" resolve into it, and
// migrations create their tables there. The schema is dropped when the test ends, so tests
// can run in parallel against one database without seeing each other's data.
//
// The server is taken from DATABASE_URL, or is the local default [DefaultURL]. The simplest
// way to get one is to run the tests through the project's wrapper, which provides a server
// and sets DATABASE_URL:
//
//	./scripts/with-postgres go test -race -count=1 ./...
//
// When no server is reachable, tests are skipped, except when the environment variable CI is
// true: then they fail, so that a CI run cannot pass without having run them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultURL is the server used when DATABASE_URL is not set: a local PostgreSQL that lets
// the postgres role in without a password.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

const (
	// pingTimeout bounds the reachability check done once per server URL.
	pingTimeout = 3 * time.Second
	// adminTimeout bounds creating and dropping a schema.
	adminTimeout = 30 * time.Second
	// maxNamePart is how many characters of the test name go into the schema name.
	maxNamePart = 30
)

// reachable caches, per base URL, the result of the reachability check (an error or nil),
// so that a missing server costs one timeout per test binary rather than one per test.
var reachable sync.Map // string -> *pingResult

type pingResult struct {
	once sync.Once
	err  error
}

// BaseURL returns the connection string of the server the tests use: DATABASE_URL if it is
// set, otherwise [DefaultURL]. It checks once per test binary that the server answers; if it
// does not, BaseURL skips the test, or fails it when the environment variable CI is true.
//
// Tests rarely need BaseURL itself: connections made with it use the database's default
// search_path, not a private schema. Use [New] or [NewURL] for that.
func BaseURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		base = DefaultURL
	}
	v, _ := reachable.LoadOrStore(base, &pingResult{})
	r := v.(*pingResult)
	r.once.Do(func() { r.err = ping(base) })
	if r.err != nil {
		msg := fmt.Sprintf("no PostgreSQL at %s: %v", Redact(base), r.err)
		if inCI() {
			t.Fatalf("%s\n(CI is set, so database tests fail instead of being skipped; "+
				"run them with ./scripts/with-postgres go test ./...)", msg)
		}
		t.Skipf("%s; run the tests with ./scripts/with-postgres go test ./...", msg)
	}
	return base
}

// New returns a pool whose connections use a fresh, empty schema of their own: it is the
// only schema on their search_path, so unqualified names are created in it and resolve to
// it. The schema is created for this test and dropped, with everything in it, when the test
// ends; the pool is closed before that. Connections acquired from the pool must have been
// released by then.
//
// New skips or fails the test as [BaseURL] does when no server is reachable.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	_, pool := NewURL(t)
	return pool
}

// NewURL is [New] that also returns a connection string for the same schema: the base URL
// with the search_path set through the "options" parameter (options=-csearch_path=SCHEMA).
// pgx, database/sql with the pgx stdlib driver, and libpq programs such as psql all honour
// it, so a test can open a *sql.DB with it or hand it to a subprocess as DATABASE_URL.
// Connections opened from the URL are the test's to close; the schema is dropped after the
// cleanups the test registers itself (t.Cleanup runs them last-registered first).
//
// The URL contains the password of DATABASE_URL, if it has one: pass it through [Redact]
// before logging it.
func NewURL(t testing.TB) (connString string, pool *pgxpool.Pool) {
	t.Helper()
	base := BaseURL(t)
	schema := SchemaName(t.Name())

	connString, err := withSearchPath(base, schema)
	if err != nil {
		t.Fatalf("pgtest: DATABASE_URL %s: %v", Redact(base), err)
	}

	if err := execAdmin(base, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("pgtest: creating schema %s: %v", schema, err)
	}
	// Registered before the pool exists so that the schema goes even if the pool fails.
	t.Cleanup(func() {
		if pool != nil {
			pool.Close()
		}
		if err := execAdmin(base, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+
			" CASCADE"); err != nil {
			t.Errorf("pgtest: dropping schema %s: %v", schema, err)
		}
	})

	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		t.Fatalf("pgtest: connection string for schema %s is invalid", schema)
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: opening pool for schema %s: %v", schema, err)
	}
	pool = p
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("pgtest: connecting with schema %s: %v", schema, err)
	}
	return connString, pool
}

// SchemaName returns a new schema name for the test called testName: "t_", the test name
// lower-cased with runs of other characters than a-z and 0-9 turned into "_" and cut to 30
// characters, "_", and 8 random hex digits; for example "t_testput_replaces_3fa91c02". The
// result is a valid unquoted PostgreSQL identifier of at most 41 bytes.
func SchemaName(testName string) string {
	var b strings.Builder
	b.WriteString("t_")
	underscore := true // collapse runs; no "_" right after the prefix
	n := 0
	for _, r := range strings.ToLower(testName) {
		if n == maxNamePart {
			break
		}
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			b.WriteRune(r)
			underscore = false
		case underscore:
			continue
		default:
			b.WriteByte('_')
			underscore = true
		}
		n++
	}
	if !underscore {
		b.WriteByte('_')
	}
	var random [4]byte
	if _, err := rand.Read(random[:]); err != nil {
		panic("pgtest: crypto/rand failed: " + err.Error())
	}
	b.WriteString(hex.EncodeToString(random[:]))
	return b.String()
}

// Redact returns connString with any password in it replaced by "xxxxx", for messages. It
// handles postgres:// URLs (user info and password/sslpassword query parameters) and
// key=value connection strings. A URL that cannot be parsed is not shown at all.
func Redact(connString string) string {
	if isURL(connString) {
		u, err := url.Parse(connString)
		if err != nil {
			return "(unparsable connection URL)"
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		u.RawQuery, _ = editQuery(u.RawQuery, func(key, value string) string {
			if key == "password" || key == "sslpassword" {
				return "xxxxx"
			}
			return value
		})
		return u.String()
	}
	return kvPassword.ReplaceAllString(connString, "${1}xxxxx")
}

// kvPassword matches the value of password and sslpassword in a key=value connection
// string, quoted ('...' with \-escapes) or not.
var kvPassword = regexp.MustCompile(`(?i)((?:^|\s)(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)`)

func isURL(connString string) bool {
	return strings.HasPrefix(connString, "postgres://") ||
		strings.HasPrefix(connString, "postgresql://")
}

// editQuery returns the raw URL query rawQuery with each value replaced by edit(key, value),
// and whether the key "options" occurs. Keys and values are passed and returned still
// percent-encoded, and everything else is kept as it was: unlike url.Values.Encode, this
// does not turn spaces into "+", which libpq and pgx would take literally.
func editQuery(rawQuery string, edit func(key, value string) string) (string, bool) {
	if rawQuery == "" {
		return "", false
	}
	hasOptions := false
	params := strings.Split(rawQuery, "&")
	for i, p := range params {
		key, value, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		if key == "options" {
			hasOptions = true
		}
		params[i] = key + "=" + edit(key, value)
	}
	return strings.Join(params, "&"), hasOptions
}

// withSearchPath returns base with search_path set to schema through the options parameter,
// keeping options already present.
func withSearchPath(base, schema string) (string, error) {
	if isURL(base) {
		u, err := url.Parse(base)
		if err != nil {
			return "", errors.New("not a valid connection URL")
		}
		opt := "-csearch_path%3D" + schema // schema names need no escaping
		query, found := editQuery(u.RawQuery, func(key, value string) string {
			if key != "options" {
				return value
			}
			if value == "" {
				return opt
			}
			return value + "%20" + opt
		})
		if !found {
			if query != "" {
				query += "&"
			}
			query += "options=" + opt
		}
		u.RawQuery = query
		return u.String(), nil
	}
	opt := "-csearch_path=" + schema
	// key=value form: a second options= would replace the first, so refuse to merge.
	if hasOptions.MatchString(base) {
		return "", errors.New("has options=; use a postgres:// URL so search_path can be added")
	}
	return strings.TrimSpace(base) + " options='" + opt + "'", nil
}

var hasOptions = regexp.MustCompile(`(?i)(^|\s)options\s*=`)

// ping checks that the server at connString accepts a connection and a query.
func ping(connString string) error {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		// The parse error may quote the connection string; don't risk showing a password.
		return errors.New("not a valid PostgreSQL connection string")
	}
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

// execAdmin runs one statement on a short-lived connection to connString.
func execAdmin(connString, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// inCI reports whether the environment variable CI is set to a true value ("true", "1", ...).
func inCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}
