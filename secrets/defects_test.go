package secrets_test

// One test per defect of the PHP original (DESIGN.md, "Defects of the PHP
// original that must not come back"). Defect 7, row-by-row rotation that
// can overwrite a concurrent write, is the rotation package's: see
// TestRotateWritesOneStatementPerBatch and TestRotateKeepsConcurrentWrites
// in rotation/rotation_test.go.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// Defect 1: group() and owner() changed the one shared service object.
func TestDefect1ScopesAreImmutable(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	base := secrets.New(newRing(t, rawKey)).Group("app")
	mustSet(t, base, pool, "k", "base value")

	derived := []secrets.Store{
		base.Group("other"), base.Owner(1), base.Owner(0), base.Model("users", 2),
		base.Model("users", 2).NoOwner(), base.Owner(3).Group("teams"),
	}
	for _, d := range derived {
		mustSet(t, d, pool, "k", "value of "+d.String())
	}
	if got := base.String(); got != "app" {
		t.Errorf("base scope is %q after deriving scopes; want app", got)
	}
	if diff := cmp.Diff(secrets.Name{Group: "app", Key: "k"}, base.Name("k")); diff != "" {
		t.Errorf("base.Name after deriving scopes (-want +got):\n%s", diff)
	}
	wantValue(t, base, pool, "k", "base value")

	// Many goroutines derive scopes from the one base at once; each reads
	// and writes only its own. Run with -race.
	const workers, rounds = 8, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				var s secrets.Store
				switch w % 3 {
				case 0:
					s = base.Model("users", int64(w))
				case 1:
					s = base.Group(fmt.Sprintf("group-%d", w))
				default:
					s = base.Owner(int64(w)).Group(fmt.Sprintf("group-%d", w))
				}
				want := fmt.Sprintf("worker %d round %d", w, r)
				if err := s.Set(ctx, pool, "k", want); err != nil {
					t.Errorf("worker %d: Set: %v", w, err)
					return
				}
				got, err := secrets.GetAs[string](ctx, s, pool, "k")
				if err != nil {
					t.Errorf("worker %d: Get: %v", w, err)
					return
				}
				if got != want {
					t.Errorf("worker %d round %d: read a value that is not its own", w, r)
					return
				}
			}
		})
	}
	wg.Wait()

	wantValue(t, base, pool, "k", "base value")
	if n := countRows(t, pool, ""); n != 1+len(derived)+workers {
		t.Errorf("%d rows; want %d", n, 1+len(derived)+workers)
	}
}

// Defect 2: a get in a scope with no owner ignored owner_id.
func TestDefect2GlobalGetNeverReturnsOwnedRow(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	base := secrets.New(newRing(t, rawKey)).Group("users")
	mustSet(t, base.Owner(42), pool, "api_token", "owned by 42")
	mustSet(t, base.Owner(0), pool, "api_token", "owned by 0")

	_, err := base.Get(ctx, pool, "api_token")
	wantErr(t, "global Get with only owned rows", err, secrets.ErrNotFound)
	_, err = base.Model("users", 42).NoOwner().GetJSON(ctx, pool, "api_token")
	wantErr(t, "NoOwner GetJSON with only owned rows", err, secrets.ErrNotFound)
	if infos, err := base.List(ctx, pool); err != nil || len(infos) != 0 {
		t.Errorf("global List = %d rows, %v; want 0", len(infos), err)
	}
	if deleted, err := base.Delete(ctx, pool, "api_token"); err != nil || deleted {
		t.Errorf("global Delete = %v, %v; want false: it must not remove an owned row", deleted, err)
	}
	if n := countRows(t, pool, ""); n != 2 {
		t.Errorf("%d rows after global Delete; want 2", n)
	}

	// A global secret beside them is its own row.
	mustSet(t, base, pool, "api_token", "global")
	wantValue(t, base, pool, "api_token", "global")
	wantValue(t, base.Owner(42), pool, "api_token", "owned by 42")
	wantValue(t, base.Owner(0), pool, "api_token", "owned by 0")
}

// Defect 3: a NULL owner was distinct in the unique key, so a global
// secret set twice made two rows.
func TestDefect3GlobalSetTwiceKeepsOneRow(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	ring := newRing(t, rawKey)
	s := secrets.New(ring)

	mustSet(t, s, pool, "smtp", "first")
	mustSet(t, s, pool, "smtp", "second")
	if n := countRows(t, pool, `key = 'smtp' AND owner_id IS NULL`); n != 1 {
		t.Errorf("%d global rows after two Sets; want 1", n)
	}
	wantValue(t, s, pool, "smtp", "second")

	for _, v := range []string{"third", "fourth"} {
		if err := secrets.SetMany(ctx, pool, ring, []secrets.Entry{{Name: s.Name("smtp"), Value: v}}); err != nil {
			t.Fatalf("SetMany: %v", err)
		}
	}
	if n := countRows(t, pool, `key = 'smtp' AND owner_id IS NULL`); n != 1 {
		t.Errorf("%d global rows after SetMany twice; want 1", n)
	}
	wantValue(t, s, pool, "smtp", "fourth")

	// The table itself refuses a second global row.
	_, err := pool.Exec(ctx, `INSERT INTO secrets (key, "group", owner_id, value)
		VALUES ('smtp', 'global', NULL, 'x')`)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Errorf("inserting a second global row: err = %v; want unique violation 23505", err)
	}
}

// v1Body decodes the body of a stored v1 value.
func v1Body(t *testing.T, stored string) []byte {
	t.Helper()
	rest, ok := strings.CutPrefix(stored, "v1.")
	if !ok {
		t.Fatalf("stored value does not start with v1.")
	}
	body, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		t.Fatalf("stored body is not base64url without padding")
	}
	return body
}

func v1Value(body []byte) string { return "v1." + base64.RawURLEncoding.EncodeToString(body) }

// Defect 4: no MAC, so ciphertext could be altered or moved unnoticed and
// a wrong key "decrypted" to garbage.
func TestDefect4AlteredOrMovedValuesFail(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	ring := newRing(t, rawKey)
	base := secrets.New(ring)
	victim := base.Model("users", 1)
	mustSet(t, victim, pool, "token", "a value of some length, two blocks")
	stored := rawValue(t, pool, "users", ptr(1), "token")
	body := v1Body(t, stored)
	const kidEnd, ivEnd, tagLen = 8, 24, 32

	t.Run("altered", func(t *testing.T) {
		var msgs []string
		for _, tc := range []struct {
			name  string
			value func() string
		}{
			{"flip in IV", flipAt(body, kidEnd)},
			{"flip in last IV byte", flipAt(body, ivEnd-1)},
			{"flip in first ciphertext byte", flipAt(body, ivEnd)},
			{"flip in last ciphertext byte", flipAt(body, len(body)-tagLen-1)},
			{"flip in tag", flipAt(body, len(body)-1)},
			{"tag cut by one byte", func() string { return v1Value(body[:len(body)-1]) }},
			{"last block removed", func() string {
				b := append([]byte{}, body[:len(body)-tagLen-16]...)
				return v1Value(append(b, body[len(body)-tagLen:]...))
			}},
			{"block appended", func() string {
				b := append([]byte{}, body[:len(body)-tagLen]...)
				b = append(b, make([]byte, 16)...)
				return v1Value(append(b, body[len(body)-tagLen:]...))
			}},
			{"only the prefix", func() string { return "v1." }},
			{"not base64url", func() string { return stored[:10] + "*" + stored[11:] }},
			{"padding added", func() string { return stored + "==" }},
			{"newline added", func() string { return stored[:20] + "\n" + stored[20:] }},
			{"other version prefix", func() string { return "v2." + stored[3:] }},
			{"empty", func() string { return "" }},
		} {
			setRawValue(t, pool, "users", ptr(1), "token", tc.value())
			v, err := victim.Get(ctx, pool, "token")
			wantErr(t, tc.name, err, secrets.ErrIntegrity)
			if v != nil {
				t.Errorf("%s: Get returned a value with the error", tc.name)
			}
			if err != nil {
				msgs = append(msgs, err.Error())
			}
		}
		// One opaque error: it does not say which check failed.
		for i := range msgs {
			if msgs[i] != msgs[0] {
				t.Errorf("integrity errors differ between cases %d and 0", i)
			}
		}
	})

	t.Run("kid altered", func(t *testing.T) {
		setRawValue(t, pool, "users", ptr(1), "token", flipAt(body, 0)())
		_, err := victim.Get(ctx, pool, "token")
		wantErr(t, "flip in key id", err, secrets.ErrWrongKey)
	})

	t.Run("moved", func(t *testing.T) {
		setRawValue(t, pool, "users", ptr(1), "token", stored)
		wantValue(t, victim, pool, "token", "a value of some length, two blocks")
		targets := []struct {
			name  string
			store secrets.Store
			group string
			owner *int64
			key   string
		}{
			{"another owner", base.Model("users", 2), "users", ptr(2), "token"},
			{"owner 0", base.Model("users", 0), "users", ptr(0), "token"},
			{"no owner", base.Group("users"), "users", nil, "token"},
			{"another group", base.Model("teams", 1), "teams", ptr(1), "token"},
			{"another key", victim, "users", ptr(1), "token2"},
			{"owner 1 in global", base.Owner(1), "global", ptr(1), "token"},
		}
		for _, tg := range targets {
			mustSet(t, tg.store, pool, tg.key, "own value of "+tg.name)
			setRawValue(t, pool, tg.group, tg.owner, tg.key, stored)
			_, err := tg.store.Get(ctx, pool, tg.key)
			wantErr(t, "value copied to "+tg.name, err, secrets.ErrIntegrity)
		}

		// And from a global row into owner 0's row and back.
		g, o := base.Group("flags"), base.Model("flags", 0)
		mustSet(t, g, pool, "k", "global")
		mustSet(t, o, pool, "k", "owner zero")
		gv, ov := rawValue(t, pool, "flags", nil, "k"), rawValue(t, pool, "flags", ptr(0), "k")
		setRawValue(t, pool, "flags", nil, "k", ov)
		setRawValue(t, pool, "flags", ptr(0), "k", gv)
		_, err := g.Get(ctx, pool, "k")
		wantErr(t, "owner 0 value in global row", err, secrets.ErrIntegrity)
		_, err = o.Get(ctx, pool, "k")
		wantErr(t, "global value in owner 0 row", err, secrets.ErrIntegrity)
	})

	t.Run("wrong keyring", func(t *testing.T) {
		setRawValue(t, pool, "users", ptr(1), "token", stored)
		for _, r := range []*secrets.Keyring{newRing(t, hexKey), newRing(t, hexKey, b64Key)} {
			v, err := secrets.New(r).Model("users", 1).Get(ctx, pool, "token")
			wantErr(t, "Get with a keyring without the key", err, secrets.ErrWrongKey)
			if v != nil {
				t.Errorf("Get with a wrong keyring returned a value")
			}
		}
		// The key as a previous key still opens it.
		wantValue(t, secrets.New(newRing(t, hexKey, rawKey)).Model("users", 1), pool, "token",
			"a value of some length, two blocks")
	})
}

// flipAt returns a function giving the v1 value of body with byte i
// changed.
func flipAt(body []byte, i int) func() string {
	return func() string {
		b := append([]byte{}, body...)
		b[i] ^= 0x01
		return v1Value(b)
	}
}

// Defect 5: the envelope began with an unsalted SHA-256 of the key.
func TestDefect5NoKeyHashInEnvelope(t *testing.T) {
	pool := newDB(t)
	for k, key := range []string{rawKey, hexKey, b64Key} {
		group := fmt.Sprintf("ring%d", k)
		s := secrets.New(newRing(t, key)).Group(group)
		for i, v := range []any{"x", "", nil, strings.Repeat("long ", 40)} {
			name := fmt.Sprintf("v%d", i)
			mustSet(t, s, pool, name, v)
			stored := rawValue(t, pool, group, nil, name)
			label := fmt.Sprintf("key %d value %d", k, i)
			checkNoKeyMaterial(t, label+" stored text", stored, key)
			checkNoKeyMaterial(t, label+" decoded body", string(v1Body(t, stored)), key)
		}
	}
}

// Defect 6: a decryption failure looked like a missing secret.
func TestDefect6DecryptFailureIsNotNotFound(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	s := secrets.New(newRing(t, rawKey)).Model("users", 6)
	mustSet(t, s, pool, "tampered", "v")
	mustSet(t, s, pool, "other key", "v")
	mustSet(t, s, pool, "null", nil)

	body := v1Body(t, rawValue(t, pool, "users", ptr(6), "tampered"))
	setRawValue(t, pool, "users", ptr(6), "tampered", flipAt(body, len(body)-1)())
	wrong := secrets.New(newRing(t, hexKey)).Model("users", 6)

	for _, tc := range []struct {
		name  string
		store secrets.Store
		key   string
		want  error
	}{
		{"tampered", s, "tampered", secrets.ErrIntegrity},
		{"wrong key", wrong, "other key", secrets.ErrWrongKey},
		{"wrong key, stored null", wrong, "null", secrets.ErrWrongKey},
	} {
		v, err := tc.store.Get(ctx, pool, tc.key)
		if err == nil {
			t.Errorf("%s: Get returned no error (value of type %T)", tc.name, v)
			continue
		}
		if errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("%s: decrypt failure matches ErrNotFound: %v", tc.name, err)
		}
		wantErr(t, tc.name, err, tc.want)
		if _, err := tc.store.GetJSON(ctx, pool, tc.key); errors.Is(err, secrets.ErrNotFound) || err == nil {
			t.Errorf("%s: GetJSON err = %v; want a decrypt error", tc.name, err)
		}
		if _, err := secrets.GetAs[*string](ctx, tc.store, pool, tc.key); errors.Is(err, secrets.ErrNotFound) ||
			err == nil {
			t.Errorf("%s: GetAs err = %v; want a decrypt error", tc.name, err)
		}
	}
}
