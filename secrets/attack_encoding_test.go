package secrets_test

// Attack test: a database whose encoding is not UTF8. Run with
// DATABASE_URL pointing at a SQL_ASCII database, e.g.
//
//	createdb -E SQL_ASCII -T template0 --lc-collate=C --lc-ctype=C attack_sqlascii
//	DATABASE_URL=postgres://postgres@127.0.0.1:5432/attack_sqlascii?sslmode=disable \
//	  go test -run TestAttackNonUTF8Database ./secrets/
//
// On a UTF8 database it only checks the same behaviour holds.

import (
	"errors"
	"strings"
	"testing"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

func TestAttackNonUTF8Database(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	var enc string
	if err := pool.QueryRow(ctx, "SHOW server_encoding").Scan(&enc); err != nil {
		t.Fatal(err)
	}
	t.Logf("server_encoding %s", enc)
	s := secrets.New(newRing(t, rawKey)).Group("g")

	// 150 characters, 300 bytes: valid by the contract.
	long := strings.Repeat("é", 150)
	if err := s.Set(ctx, pool, long, "v"); err != nil {
		t.Errorf("150 two-byte characters: Set failed with a database error: %v", err)
	}

	// 75 two-byte characters and a space: 76 characters, 151 bytes.
	spaced := strings.Repeat("é", 75) + " "
	if err := s.Set(ctx, pool, spaced, "v"); err != nil {
		t.Fatalf("Set: %v", err)
	}
	_, err := s.Get(ctx, pool, spaced)
	if err != nil {
		t.Errorf("Set succeeded, then Get of the same key: %v (NotFound=%v)", err, errors.Is(err, secrets.ErrNotFound))
	}
	var stored string
	pool.QueryRow(ctx, `SELECT key FROM secrets WHERE "group" = 'g' ORDER BY id DESC LIMIT 1`).Scan(&stored)
	if stored != spaced {
		t.Errorf("the database stored a key of %d bytes for one of %d: silently truncated", len(stored), len(spaced))
	}
}
