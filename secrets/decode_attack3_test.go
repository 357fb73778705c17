package secrets_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// Attacks on the fast paths of Keyring.Open (validJSON, plainString) and
// of GetAs (decodeValue). Plaintexts are sealed by a key holder through
// Keyring.Seal, which takes any bytes, so that the store holds exactly
// the text under test. Messages name the case, never the value.

// nonJSONPlaintexts are texts that are not one JSON value; several look
// like a plain string to a careless scan.
var nonJSONPlaintexts = map[string]string{
	"empty":                  ``,
	"one quote":              `"`,
	"unclosed string":        `"abc`,
	"unopened string":        `abc"`,
	"quote inside":           `"a"b"`,
	"escaped closing quote":  `"abc\"`,
	"two strings":            `"a""b"`,
	"two strings spaced":     `"a" "b"`,
	"raw newline inside":     "\"a\nb\"",
	"raw tab inside":         "\"a\tb\"",
	"raw NUL inside":         "\"a\x00b\"",
	"raw 0x1f inside":        "\"a\x1fb\"",
	"bad escape":             `"\x41"`,
	"short unicode escape":   `"\u12"`,
	"bare word":              `secret`,
	"single quotes":          `'abc'`,
	"trailing comma array":   `[1,]`,
	"leading zero":           `01`,
	"plus number":            `+1`,
	"NaN":                    `NaN`,
	"unclosed object":        `{"a":1`,
	"string then garbage":    `"abc"x`,
	"garbage then string":    `x"abc"`,
	"BOM then string":        "\ufeff\"abc\"",
	"quote-only pair spaced": `" `,
	"latin1 quote string":    "\"caf\xe9\x22\x22",
}

// TestAttack3OpenRefusesNonJSON: a value whose plaintext is not valid JSON
// opens as ErrIntegrity, through Keyring.Open and every Store read.
func TestAttack3OpenRefusesNonJSON(t *testing.T) {
	pool := newDB(t)
	ctx := context.Background()
	ring := newRing(t, hexKey)
	s := secrets.New(ring).Group("nj")
	i := 0
	keys := map[string]string{}
	for name, pt := range nonJSONPlaintexts {
		i++
		key := fmt.Sprintf("k%d", i)
		keys[name] = key
		n := s.Name(key)
		sealed, err := ring.Seal(n, []byte(pt))
		if err != nil {
			t.Fatalf("%s: seal: %v", name, err)
		}
		if _, _, err := ring.Open(n, sealed); !errors.Is(err, secrets.ErrIntegrity) {
			t.Errorf("%s: Keyring.Open: %v, want ErrIntegrity", name, err)
		}
		insertRaw(t, pool, "nj", nil, key, sealed)
	}
	for name, key := range keys {
		if _, err := s.Get(ctx, pool, key); !errors.Is(err, secrets.ErrIntegrity) {
			t.Errorf("%s: Get: %v, want ErrIntegrity", name, err)
		}
		if _, err := s.GetJSON(ctx, pool, key); !errors.Is(err, secrets.ErrIntegrity) {
			t.Errorf("%s: GetJSON: %v, want ErrIntegrity", name, err)
		}
		if _, err := secrets.GetAs[string](ctx, s, pool, key); !errors.Is(err, secrets.ErrIntegrity) {
			t.Errorf("%s: GetAs[string]: %v, want ErrIntegrity", name, err)
		}
		if _, err := secrets.GetAs[json.RawMessage](ctx, s, pool, key); !errors.Is(err, secrets.ErrIntegrity) {
			t.Errorf("%s: GetAs[json.RawMessage]: %v, want ErrIntegrity", name, err)
		}
	}
}

// Target types for the GetAs comparison.
type a3Named string

type a3Struct struct {
	A any    `json:"a"`
	B string `json:"b"`
	N int64  `json:"n,string"`
}

type a3Iface interface{ M() }

// validPlaintexts are JSON texts, with the spacing and escapes a key
// holder might write: each must decode by GetAs exactly as a Decoder with
// UseNumber decodes it.
var validPlaintexts = []string{
	`"abc"`, `""`, `"héllo wörld ✓"`, `"a\"b"`, `"\u0041"`, `"\ud83d\ude00"`, `"\ud800"`,
	`"\/"`, `"<&>"`, `"\u003c"`, "\"caf\xe9\"", "\"\x7f\"", `"QUJD"`, `"123"`, `"1e3"`,
	`"2024-01-02T03:04:05Z"`, `"127.0.0.1"`, ` "abc"`, `"abc" `, "\t\"abc\"\n",
	`true`, `false`, `null`, ` null`, `0`, `-0`, `12345678901234567890`, `9007199254740993`,
	`3.25`, `1e400`, `-1`, `[]`, `{}`, `[1,"a",null]`, `{"a":1,"b":"x","n":"5"}`,
	`{"a":12345678901234567890}`, `[[[]]]`, ` 42 `, `"\u0000"`, `"\t"`,
}

func decodeRef(pt []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(pt))
	dec.UseNumber()
	return dec.Decode(v)
}

// compareAs reads key with GetAs[T] and compares the result, and whether
// it failed, with the reference decoder.
func compareAs[T any](t *testing.T, ctx context.Context, s secrets.Store, db secrets.DBTX,
	key string, pt []byte, label string) {
	t.Helper()
	var want T
	wantErr := decodeRef(pt, &want)
	got, err := secrets.GetAs[T](ctx, s, db, key)
	if (err != nil) != (wantErr != nil) {
		t.Errorf("%s as %T: GetAs failed=%v, Decoder failed=%v", label, want, err != nil, wantErr != nil)
		return
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Errorf("%s as %T: GetAs result differs from Decoder's (types %T, %T)", label, want, got, want)
	}
	if err == nil && reflect.TypeOf(got) != reflect.TypeOf(want) {
		t.Errorf("%s as %T: dynamic types differ", label, want)
	}
}

func TestAttack3GetAsMatchesDecoder(t *testing.T) {
	pool := newDB(t)
	ctx := context.Background()
	ring := newRing(t, hexKey)
	s := secrets.New(ring).Model("dec", 3)
	for i, pt := range validPlaintexts {
		key := fmt.Sprintf("v%d", i)
		sealed, err := ring.Seal(s.Name(key), []byte(pt))
		if err != nil {
			t.Fatal(err)
		}
		insertRaw(t, pool, "dec", ptr(3), key, sealed)
	}
	for i, pt := range validPlaintexts {
		key := fmt.Sprintf("v%d", i)
		label := fmt.Sprintf("plaintext #%d", i)
		b := []byte(pt)
		compareAs[string](t, ctx, s, pool, key, b, label)
		compareAs[any](t, ctx, s, pool, key, b, label)
		compareAs[a3Named](t, ctx, s, pool, key, b, label)
		compareAs[*string](t, ctx, s, pool, key, b, label)
		compareAs[*any](t, ctx, s, pool, key, b, label)
		compareAs[[]byte](t, ctx, s, pool, key, b, label)
		compareAs[json.RawMessage](t, ctx, s, pool, key, b, label)
		compareAs[json.Number](t, ctx, s, pool, key, b, label)
		compareAs[int](t, ctx, s, pool, key, b, label)
		compareAs[int64](t, ctx, s, pool, key, b, label)
		compareAs[uint8](t, ctx, s, pool, key, b, label)
		compareAs[float64](t, ctx, s, pool, key, b, label)
		compareAs[bool](t, ctx, s, pool, key, b, label)
		compareAs[[]any](t, ctx, s, pool, key, b, label)
		compareAs[[2]int](t, ctx, s, pool, key, b, label)
		compareAs[map[string]any](t, ctx, s, pool, key, b, label)
		compareAs[a3Struct](t, ctx, s, pool, key, b, label)
		compareAs[time.Time](t, ctx, s, pool, key, b, label)
		compareAs[netip.Addr](t, ctx, s, pool, key, b, label)
		compareAs[a3Iface](t, ctx, s, pool, key, b, label)
	}
	// Get is GetAs[any].
	for i, pt := range validPlaintexts {
		var want any
		_ = decodeRef([]byte(pt), &want)
		got, err := s.Get(ctx, pool, fmt.Sprintf("v%d", i))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("plaintext #%d: Get differs from the Decoder (%v)", i, err)
		}
	}
}
