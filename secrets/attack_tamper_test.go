package secrets_test

// Attack tests: tampered rows. Every failure must be ErrIntegrity or
// ErrWrongKey, never a value, never a panic. Nothing here prints a value
// or a key.

import (
	"context"
	"crypto/aes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// getCaught checks what Get does with a stored text, with a panic caught.
func getCaught(s secrets.Store, db secrets.DBTX, key string) (v any, err error, panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	v, err = s.Get(context.Background(), db, key)
	return v, err, false
}

func TestAttackTamperEveryPosition(t *testing.T) {
	pool := newDB(t)
	s := secrets.New(newRing(t, rawKey)).Model("users", 42)

	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	msgsByKind := map[string]map[string]int{} // sentinel -> error texts
	values := map[string]any{
		"empty string": "",
		"15 bytes":     strings.Repeat("a", 13), // 15 bytes of JSON: one block with padding 1
		"16 bytes":     strings.Repeat("b", 14), // 16 bytes of JSON: a full padding block
		"100 bytes":    strings.Repeat("c", 98),
	}
	for name, val := range values {
		key := "k-" + strings.ReplaceAll(name, " ", "-")
		mustSet(t, s, pool, key, val)
		stored := rawValue(t, pool, "users", ptr(42), key)
		body := v1Body(t, stored)

		var cases []string
		// Every character of the stored text changed to two other
		// base64url characters and to a non-base64 one.
		for i := 0; i < len(stored); i++ {
			for _, repl := range []byte{
				alphabet[(strings.IndexByte(alphabet, stored[i])+1+64)%64],
				alphabet[(strings.IndexByte(alphabet, stored[i])+33+64)%64],
				'*',
			} {
				if repl == stored[i] {
					continue
				}
				cases = append(cases, stored[:i]+string(repl)+stored[i+1:])
			}
		}
		// Every bit of the decoded body (kid, iv, ct, tag).
		for i := range body {
			for bit := range 8 {
				b := append([]byte{}, body...)
				b[i] ^= 1 << bit
				cases = append(cases, v1Value(b))
			}
		}
		// Truncation and extension of the text and of the body.
		for n := 0; n < len(stored); n++ {
			cases = append(cases, stored[:n])
		}
		for n := 0; n < len(body); n++ {
			cases = append(cases, v1Value(body[:n]))
		}
		for _, ext := range []string{"A", "AA", "AAA", "AAAA", "=", "==", " ", "\n", "\r\n", "é"} {
			cases = append(cases, stored+ext, ext+stored)
		}
		for _, extra := range []int{1, 15, 16, 17, 32} {
			cases = append(cases, v1Value(append(append([]byte{}, body...), make([]byte, extra)...)))
			// Extra block spliced before the tag.
			tagStart := len(body) - 32
			b := append([]byte{}, body[:tagStart]...)
			b = append(b, make([]byte, extra)...)
			cases = append(cases, v1Value(append(b, body[tagStart:]...)))
		}
		// Standard base64 spelling of the same bytes, padded spelling.
		cases = append(cases,
			"v1."+base64.StdEncoding.EncodeToString(body),
			"v1."+base64.URLEncoding.EncodeToString(body),
			"V1."+stored[3:], "v1"+stored[3:], "v1.."+stored[3:], " v1."+stored[3:],
			"", "v1.", "v1", "null", `"x"`, "{}")

		for i, c := range cases {
			if c == stored {
				continue
			}
			setRawValue(t, pool, "users", ptr(42), key, c)
			v, err, panicked := getCaught(s, pool, key)
			switch {
			case panicked:
				t.Fatalf("%s case %d: Get panicked", name, i)
			case err == nil:
				t.Errorf("%s case %d: tampered value opened (value of type %T)", name, i, v)
			case v != nil:
				t.Errorf("%s case %d: a value came with the error", name, i)
			// A wrong key also matches ErrIntegrity; test it first.
			case errors.Is(err, secrets.ErrWrongKey):
				addMsg(msgsByKind, "wrong key", err.Error())
			case errors.Is(err, secrets.ErrIntegrity):
				addMsg(msgsByKind, "integrity", err.Error())
			default:
				t.Errorf("%s case %d: err %v; want ErrIntegrity or ErrWrongKey", name, i, err)
			}
		}
		setRawValue(t, pool, "users", ptr(42), key, stored)
	}
	// Within each sentinel, one text per key name: nothing says which check failed.
	for kind, msgs := range msgsByKind {
		perKey := map[string]int{}
		for m := range msgs {
			perKey[strings.SplitN(m, ": ", 2)[0]]++
		}
		for k, n := range perKey {
			if n != 1 {
				t.Errorf("%s: %d different error texts for %s", kind, n, k)
			}
		}
		t.Logf("%s: %d distinct texts (one per key)", kind, len(msgs))
	}
}

func addMsg(m map[string]map[string]int, kind, msg string) {
	if m[kind] == nil {
		m[kind] = map[string]int{}
	}
	m[kind][msg]++
}

// Values copied from other rows, and sealed under other keys.
func TestAttackCopiedValues(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	ring := newRing(t, rawKey, hexKey) // hexKey is a previous key
	old := secrets.New(newRing(t, hexKey))
	foreign := secrets.New(newRing(t, b64Key))
	base := secrets.New(ring)

	victim := base.Model("users", 0)
	mustSet(t, victim, pool, "token", "victim value")

	type src struct {
		name  string
		store secrets.Store
		group string
		owner *int64
		key   string
		want  error
	}
	sources := []src{
		{"same owner, other key", base.Model("users", 0), "users", ptr(0), "other", secrets.ErrIntegrity},
		{"no owner (owner 0 vs NULL)", base.Group("users"), "users", nil, "token", secrets.ErrIntegrity},
		{"owner 1", base.Model("users", 1), "users", ptr(1), "token", secrets.ErrIntegrity},
		{"other group", base.Model("teams", 0), "teams", ptr(0), "token", secrets.ErrIntegrity},
		{"group+key shifted", base.Model("user", 0), "user", ptr(0), "stoken", secrets.ErrIntegrity},
		{"previous key of ring, other owner", old.Model("users", 7), "users", ptr(7), "token", secrets.ErrIntegrity},
		{"sealed under a key not in ring", foreign.Model("users", 0), "users", ptr(0), "x", secrets.ErrWrongKey},
	}
	for _, sc := range sources {
		mustSet(t, sc.store, pool, sc.key, "source value")
		val := rawValue(t, pool, sc.group, sc.owner, sc.key)
		setRawValue(t, pool, "users", ptr(0), "token", val)
		v, err := victim.Get(ctx, pool, "token")
		if v != nil || !errors.Is(err, sc.want) {
			t.Errorf("value copied from %s: got (%T, %v); want %v", sc.name, v, err, sc.want)
		}
	}
	// Reverse direction: owner-0 value into the global row.
	mustSet(t, base.Model("users", 0), pool, "token", "owner0 value")
	mustSet(t, base.Group("users"), pool, "token", "global value")
	setRawValue(t, pool, "users", nil, "token", rawValue(t, pool, "users", ptr(0), "token"))
	if v, err := base.Group("users").Get(ctx, pool, "token"); v != nil || !errors.Is(err, secrets.ErrIntegrity) {
		t.Errorf("owner 0 value in global row: got (%T, %v)", v, err)
	}
}

// legacySeal writes what the PHP original wrote, with a key of 32 raw bytes.
func legacySeal(t *testing.T, key, iv []byte, plaintext string) string {
	return sealLegacy(t, key, iv, []byte(plaintext))
}

// FINDING: a legacy value is accepted in any row, under any scope, and
// its content can be changed without the key. The v1 MAC (defect 4) is
// bypassed by downgrading a row to the legacy format.
func TestAttackLegacyDowngradeBypassesMAC(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	ring := newRing(t, rawKey)
	base := secrets.New(ring)

	// The application has long been on v1: every row is v1.
	admin := base.Model("users", 1)
	mustSet(t, admin, pool, "is_admin", false)
	victim := base.Model("users", 2)
	mustSet(t, victim, pool, "api_token", "victim token")

	// An old legacy row, from before the move (or from a backup), in some
	// unrelated scope; the attacker knows its plaintext (e.g. a flag).
	iv := []byte("0123456789abcdef")
	oldRow := legacySeal(t, []byte(rawKey), iv, `false`)

	t.Run("moved into another scope", func(t *testing.T) {
		// Replace a v1 row with the legacy value copied from elsewhere.
		setRawValue(t, pool, "users", ptr(2), "api_token", oldRow)
		v, err := victim.Get(ctx, pool, "api_token")
		if err == nil {
			t.Errorf("a legacy value copied into another owner's row opened (value of type %T); "+
				"want ErrIntegrity", v)
		}
	})

	t.Run("forged without the key", func(t *testing.T) {
		// CBC: flipping IV bits flips the same plaintext bits of the first
		// block. "false" + padding 0x0b*11 becomes "true " + ...: not valid
		// padding; instead target a 4-byte value "true" with padding 12.
		fp, iv0, ct := legacyParts(t, oldRow)
		known := pkcs7([]byte(`false`))
		want := pkcs7([]byte(`true`))
		forgedIV := make([]byte, 16)
		for i := range forgedIV {
			forgedIV[i] = iv0[i] ^ known[i] ^ want[i]
		}
		setRawValue(t, pool, "users", ptr(1), "is_admin", legacyValue(fp, forgedIV, ct))
		got, err := secrets.GetAs[bool](ctx, admin, pool, "is_admin")
		if err == nil {
			t.Errorf("forged legacy value opened without error; flag reads %v (attacker chose true)", got)
		}
	})

	t.Run("verify and rotate bless the forgery", func(t *testing.T) {
		// Verify counts the forged rows as readable ("previous"), and
		// rotation re-seals them as authentic v1 values of their rows.
		rep, err := rotation.Verify(ctx, pool, ring, rotation.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Unreadable == 0 {
			t.Errorf("verify: %d current, %d previous, %d unreadable: the forged rows pass as readable",
				rep.Current, rep.Previous, rep.Unreadable)
		}
		newRing := newRing(t, b64Key, rawKey)
		res, err := rotation.Rotate(ctx, pool, newRing, rotation.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Failed == 0 {
			t.Errorf("rotate: rotated %d, failed %d: the forged rows were re-sealed as v1", res.Rotated, res.Failed)
		}
		if got, err := secrets.GetAs[bool](ctx, secrets.New(newRing).Model("users", 1), pool, "is_admin"); err == nil {
			t.Errorf("after rotation the forged flag is an authentic v1 value reading %v", got)
		}
	})
}

func pkcs7(b []byte) []byte {
	pad := aes.BlockSize - len(b)%aes.BlockSize
	out := append([]byte{}, b...)
	for range pad {
		out = append(out, byte(pad))
	}
	return out
}
