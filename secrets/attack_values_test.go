package secrets_test

// Attack tests: values that Set accepts but Get cannot return.

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// A value nested deeper than encoding/json's scanner allows (10000) is
// encoded and stored by Set, then fails json.Valid in Keyring.Open and
// reads back as ErrIntegrity: the write looks like tampering.
func TestAttackDeepValueReadsAsTampered(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	s := secrets.New(newRing(t, rawKey))
	var v any = "leaf"
	for range 10001 {
		v = []any{v}
	}
	err := s.Set(ctx, pool, "deep", v)
	if err != nil {
		t.Logf("Set refused: %v", err)
		return
	}
	_, err = s.GetJSON(ctx, pool, "deep")
	if err != nil {
		t.Errorf("Set accepted the value, then GetJSON: %v (ErrIntegrity=%v)", err,
			errors.Is(err, secrets.ErrIntegrity))
	}
}

// textBytes marshals as text that is not valid UTF-8.
type textBytes struct{ n int }

func (t textBytes) MarshalText() ([]byte, error) { return []byte("a\xffb"), nil }

type textKey struct{ n int }

func (t textKey) MarshalText() ([]byte, error) { return []byte("k\xfe"), nil }

// Invalid UTF-8 from an encoding.TextMarshaler is replaced by U+FFFD, not
// refused, contrary to Set's contract.
func TestAttackTextMarshalerInvalidUTF8(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	s := secrets.New(newRing(t, rawKey))
	for name, v := range map[string]any{
		"TextMarshaler value":  textBytes{1},
		"TextMarshaler in map": map[string]any{"x": textBytes{2}},
		"TextMarshaler key":    map[textKey]int{{1}: 1},
	} {
		err := s.Set(ctx, pool, "k", v)
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, secrets.ErrInvalidArgument) {
			raw, _ := s.GetJSON(ctx, pool, "k")
			t.Errorf("%s: Set err %v; stored JSON holds U+FFFD replacement: %v", name, err,
				strings.Contains(string(raw), "\\ufffd") || strings.Contains(string(raw), "\ufffd"))
		}
	}
}

// Database errors during Set: the error text carries neither the value nor
// its ciphertext.
func TestAttackDBErrorsCarryNoValue(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	ctx := t.Context()
	s := secrets.New(newRing(t, rawKey))
	const canary = "canary-db-error-value-51ab"

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	pool.Exec(ctx, "SELECT pg_terminate_backend($1)", conn.PgConn().PID())
	errs := map[string]error{}
	errs["killed connection"] = s.Set(ctx, conn, "k", canary)
	errs["killed connection SetMany"] = secrets.SetMany(ctx, conn, newRing(t, rawKey),
		[]secrets.Entry{{Name: secrets.Name{Group: "g", Key: "k"}, Value: canary}})
	// A trigger that refuses the row, quoting it in its message and detail.
	_, err = pool.Exec(ctx, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused %', NEW USING DETAIL = NEW.value; END $$;
		CREATE TRIGGER refuse BEFORE INSERT ON secrets FOR EACH ROW EXECUTE FUNCTION refuse();`)
	if err != nil {
		t.Fatal(err)
	}
	errs["trigger"] = s.Set(ctx, pool, "k2", canary)
	for name, err := range errs {
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, canary) {
			t.Errorf("%s: the error holds the plaintext", name)
		}
		if strings.Contains(msg, "v1.") {
			t.Logf("%s: the error text holds the stored ciphertext (not plaintext)", name)
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && strings.Contains(pgErr.Detail, "v1.") {
			t.Logf("%s: PgError.Detail holds the ciphertext", name)
		}
	}
}
