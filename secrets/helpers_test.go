package secrets_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// Fake master keys for tests, one per accepted encoding. rawKey is 32
// printable bytes; hexKey and b64Key spell other bytes.
const (
	rawKey = "raw-key-for-tests-0123456789abcd"
	hexKey = "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
	b64Key = "base64:ZmFrZSBrZXkgZm9yIHNxbHNlY3JldHMgdGVzdHMhISE="
)

// keyBytes returns the 32 bytes that a key text in one of the accepted
// encodings stands for.
func keyBytes(t *testing.T, text string) []byte {
	t.Helper()
	if rest, ok := strings.CutPrefix(text, "base64:"); ok {
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			t.Fatalf("keyBytes: test key is not base64")
		}
		return b
	}
	if len(text) == 64 {
		b, err := hex.DecodeString(text)
		if err != nil {
			t.Fatalf("keyBytes: test key is not hex")
		}
		return b
	}
	return []byte(text)
}

// keyMaterial returns every spelling of the key text's bytes that must not
// appear in output: the bytes themselves, hex, base64 in its variants, the
// unsalted SHA-256 (raw and hex, as the PHP original stored it), and fmt's
// renderings of the byte slices.
func keyMaterial(t *testing.T, text string) map[string]string {
	t.Helper()
	b := keyBytes(t, text)
	sum := sha256.Sum256(b)
	sumHex := hex.EncodeToString(sum[:])
	m := map[string]string{
		"key text":           text,
		"raw key bytes":      string(b),
		"hex of key":         hex.EncodeToString(b),
		"HEX of key":         strings.ToUpper(hex.EncodeToString(b)),
		"base64 of key":      base64.RawStdEncoding.EncodeToString(b),
		"base64url of key":   base64.RawURLEncoding.EncodeToString(b),
		"sha256 of key":      string(sum[:]),
		"hex sha256 of key":  sumHex,
		"fmt of key bytes":   strings.Trim(fmt.Sprint(b), "[]"),
		"fmt of sha256 hex":  strings.Trim(fmt.Sprint([]byte(sumHex)), "[]"),
		"%x of sha256 hex":   fmt.Sprintf("%x", sumHex),
		"fmt of sha256 hash": strings.Trim(fmt.Sprint(sum[:]), "[]"),
		"%#v of key bytes":   goSyntaxElems(b),
		"%#v of sha256 hex":  goSyntaxElems([]byte(sumHex)),
	}
	return m
}

// goSyntaxElems returns the elements of b as %#v prints them, without the
// type and braces: "0x1, 0x2".
func goSyntaxElems(b []byte) string {
	s := fmt.Sprintf("%#v", b)
	return strings.TrimSuffix(s[strings.IndexByte(s, '{')+1:], "}")
}

// checkNoKeyMaterial fails the test if out contains any spelling of the
// key. It names the case and the kind of spelling, never the key.
func checkNoKeyMaterial(t *testing.T, name, out string, key string) {
	t.Helper()
	for kind, s := range keyMaterial(t, key) {
		if strings.Contains(out, s) {
			t.Errorf("%s: output contains the %s", name, kind)
		}
	}
}

// newRing returns a keyring or fails the test.
func newRing(t *testing.T, current string, previous ...string) *secrets.Keyring {
	t.Helper()
	r, err := secrets.NewKeyring(current, previous...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return r
}

// newDB returns a pool on a fresh schema with the secrets table.
func newDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	_, pool := pgtest.Migrated(t)
	return pool
}

func ptr(v int64) *int64 { return &v }

// where returns a WHERE clause and its arguments that select one row.
func where(group string, owner *int64, key string) (string, []any) {
	if owner == nil {
		return ` WHERE "group" = $1 AND key = $2 AND owner_id IS NULL`, []any{group, key}
	}
	return ` WHERE "group" = $1 AND key = $2 AND owner_id = $3`, []any{group, key, *owner}
}

// rawValue returns the value column of one row as stored.
func rawValue(t *testing.T, db secrets.DBTX, group string, owner *int64, key string) string {
	t.Helper()
	w, args := where(group, owner, key)
	var v string
	if err := db.QueryRow(context.Background(), `SELECT value FROM secrets`+w, args...).Scan(&v); err != nil {
		t.Fatalf("reading stored value of %s/%v %q: %v", group, owner, key, err)
	}
	return v
}

// setRawValue overwrites the value column of one existing row.
func setRawValue(t *testing.T, db secrets.DBTX, group string, owner *int64, key, value string) {
	t.Helper()
	w, args := where(group, owner, key)
	tag, err := db.Exec(context.Background(),
		`UPDATE secrets SET value = $`+fmt.Sprint(len(args)+1)+w, append(args, value)...)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("updating stored value of %s/%v %q: %d rows, %v", group, owner, key, tag.RowsAffected(), err)
	}
}

// insertRaw inserts a row with a given stored value, bypassing the facade.
func insertRaw(t *testing.T, db secrets.DBTX, group string, owner *int64, key, value string) {
	t.Helper()
	_, err := db.Exec(context.Background(),
		`INSERT INTO secrets (key, "group", owner_id, value) VALUES ($1, $2, $3, $4)`,
		key, group, owner, value)
	if err != nil {
		t.Fatalf("inserting row %s/%v %q: %v", group, owner, key, err)
	}
}

// countRows returns how many rows the secrets table holds, or with a
// condition, how many match it.
func countRows(t *testing.T, db secrets.DBTX, cond string, args ...any) int {
	t.Helper()
	q := `SELECT count(*) FROM secrets`
	if cond != "" {
		q += " WHERE " + cond
	}
	var n int
	if err := db.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("counting rows: %v", err)
	}
	return n
}

// noSQL is a DBTX that records any use, to prove that a call failed
// before reaching the database.
type noSQL struct{ calls int }

var errNoSQL = errors.New("noSQL: the database was reached")

func (d *noSQL) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	d.calls++
	return pgconn.CommandTag{}, errNoSQL
}

func (d *noSQL) Query(context.Context, string, ...any) (pgx.Rows, error) {
	d.calls++
	return nil, errNoSQL
}

func (d *noSQL) QueryRow(context.Context, string, ...any) pgx.Row {
	d.calls++
	return errRow{}
}

func (d *noSQL) CopyFrom(context.Context, pgx.Identifier, []string,
	pgx.CopyFromSource) (int64, error) {
	d.calls++
	return 0, errNoSQL
}

type errRow struct{}

func (errRow) Scan(...any) error { return errNoSQL }
