package secrets_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// pemText is a fake PEM block: multi-line text with padding characters.
const pemText = "-----BEGIN PRIVATE KEY-----\n" +
	"RkFLRSBQRU0gQk9EWSBGT1IgVEVTVFMgT05MWSwgTk9UIEEgUkVBTCBLRVkgLi4u\n" +
	"Li4gc3FsLXNlY3JldHMgdGVzdCBmaXh0dXJlIC0tIGZha2UgZmFrZSBmYWtl\n" +
	"-----END PRIVATE KEY-----\n"

// mustSet stores value or fails the test.
func mustSet(t *testing.T, s secrets.Store, db secrets.DBTX, key string, value any) {
	t.Helper()
	if err := s.Set(context.Background(), db, key, value); err != nil {
		t.Fatalf("Set %s %q: %v", s, key, err)
	}
}

// wantValue fails the test unless Get returns a value equal to want. It
// reports which secret differs, not how.
func wantValue(t *testing.T, s secrets.Store, db secrets.DBTX, key string, want any) {
	t.Helper()
	got, err := s.Get(context.Background(), db, key)
	if err != nil {
		t.Errorf("Get %s %q: %v", s, key, err)
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Get %s %q: value differs (got type %T, want type %T)", s, key, got, want)
	}
}

// wantErr fails the test unless err matches target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: err = %v; want %v", what, err, target)
	}
}

func TestSetGetScopes(t *testing.T) {
	pool := newDB(t)
	base := secrets.New(newRing(t, rawKey))
	for _, tc := range []struct {
		name  string
		store secrets.Store
	}{
		{"global", base},
		{"global in another group", base.Group("billing")},
		{"owner 42 in global group", base.Owner(42)},
		{"model users/42", base.Model("users", 42)},
		{"owner 0", base.Model("users", 0)},
		{"owner max int64", base.Model("users", math.MaxInt64)},
		{"unicode group", base.Group("gruppe-äöü-✓")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "api_token"
			value := "value of " + tc.name
			mustSet(t, tc.store, pool, key, value)
			wantValue(t, tc.store, pool, key, value)
			got, err := secrets.GetAs[string](t.Context(), tc.store, pool, key)
			if err != nil || got != value {
				t.Errorf("GetAs[string]: value differs or error: %v", err)
			}
		})
	}
	if n := countRows(t, pool, ""); n != 7 {
		t.Errorf("table holds %d rows; want 7", n)
	}
}

func TestScopeString(t *testing.T) {
	base := secrets.New(newRing(t, rawKey))
	for _, tc := range []struct {
		store secrets.Store
		want  string
	}{
		{base, "global"},
		{base.Group("users"), "users"},
		{base.Model("users", 42), "users/42"},
		{base.Owner(0), "global/0"},
		{base.Model("users", 42).NoOwner(), "users"},
	} {
		if diff := cmp.Diff(tc.want, tc.store.String()); diff != "" {
			t.Errorf("String() (-want +got):\n%s", diff)
		}
	}
}

// storedTimes returns created_at and updated_at of one row.
func storedTimes(t *testing.T, db secrets.DBTX, group string, owner *int64, key string) (created, updated time.Time) {
	t.Helper()
	w, args := where(group, owner, key)
	err := db.QueryRow(context.Background(), `SELECT created_at, updated_at FROM secrets`+w, args...).
		Scan(&created, &updated)
	if err != nil {
		t.Fatalf("reading timestamps: %v", err)
	}
	return created, updated
}

func TestOverwrite(t *testing.T) {
	pool := newDB(t)
	base := secrets.New(newRing(t, rawKey))
	for _, tc := range []struct {
		name  string
		store secrets.Store
		owner *int64
	}{
		{"global", base.Group("g"), nil},
		{"owner 0", base.Group("g").Owner(0), ptr(0)},
		{"owner 42", base.Group("g").Owner(42), ptr(42)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustSet(t, tc.store, pool, "token", "first")
			created1, updated1 := storedTimes(t, pool, "g", tc.owner, "token")
			stored1 := rawValue(t, pool, "g", tc.owner, "token")

			time.Sleep(5 * time.Millisecond)
			mustSet(t, tc.store, pool, "token", "second")
			created2, updated2 := storedTimes(t, pool, "g", tc.owner, "token")

			wantValue(t, tc.store, pool, "token", "second")
			w, args := where("g", tc.owner, "token")
			if n := countRows(t, pool, strings.TrimPrefix(w, " WHERE "), args...); n != 1 {
				t.Errorf("%d rows after overwrite; want 1", n)
			}
			if !created2.Equal(created1) {
				t.Errorf("created_at moved on overwrite")
			}
			if !updated2.After(updated1) {
				t.Errorf("updated_at did not move on overwrite")
			}
			if rawValue(t, pool, "g", tc.owner, "token") == stored1 {
				t.Errorf("stored value unchanged after overwrite")
			}
		})
	}
}

func TestSetSameValueTwiceUsesFreshIV(t *testing.T) {
	pool := newDB(t)
	s := secrets.New(newRing(t, rawKey))
	mustSet(t, s, pool, "k", "same")
	first := rawValue(t, pool, "global", nil, "k")
	mustSet(t, s, pool, "k", "same")
	if rawValue(t, pool, "global", nil, "k") == first {
		t.Errorf("the same value sealed twice gave the same stored text")
	}
}

func TestDelete(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	base := secrets.New(newRing(t, rawKey))
	for _, tc := range []struct {
		name  string
		store secrets.Store
	}{
		{"global", base},
		{"owner 0", base.Owner(0)},
		{"model", base.Model("users", 7)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustSet(t, tc.store, pool, "token", "v")
			deleted, err := tc.store.Delete(ctx, pool, "token")
			if err != nil || !deleted {
				t.Fatalf("first Delete = %v, %v; want true, nil", deleted, err)
			}
			deleted, err = tc.store.Delete(ctx, pool, "token")
			if err != nil || deleted {
				t.Errorf("second Delete = %v, %v; want false, nil", deleted, err)
			}
			_, err = tc.store.Get(ctx, pool, "token")
			wantErr(t, "Get after Delete", err, secrets.ErrNotFound)
			deleted, err = tc.store.Delete(ctx, pool, "never-set")
			if err != nil || deleted {
				t.Errorf("Delete of a missing key = %v, %v; want false, nil", deleted, err)
			}
		})
	}
	if n := countRows(t, pool, ""); n != 0 {
		t.Errorf("%d rows left after deleting everything", n)
	}
}

func TestOwnerAndGroupIsolation(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	base := secrets.New(newRing(t, rawKey))
	scopes := []struct {
		name  string
		store secrets.Store
	}{
		{"users global", base.Group("users")},
		{"users/0", base.Model("users", 0)},
		{"users/1", base.Model("users", 1)},
		{"users/2", base.Model("users", 2)},
		{"teams global", base.Group("teams")},
		{"teams/1", base.Model("teams", 1)},
		{"global/1", base.Owner(1)},
		{"global", base},
	}
	for _, sc := range scopes {
		mustSet(t, sc.store, pool, "token", "token of "+sc.name)
	}
	for _, sc := range scopes {
		wantValue(t, sc.store, pool, "token", "token of "+sc.name)
	}

	// Deleting in one scope leaves every other scope alone.
	if deleted, err := base.Model("users", 1).Delete(ctx, pool, "token"); err != nil || !deleted {
		t.Fatalf("Delete users/1 = %v, %v", deleted, err)
	}
	for _, sc := range scopes {
		if sc.name == "users/1" {
			_, err := sc.store.Get(ctx, pool, "token")
			wantErr(t, "Get users/1 after its Delete", err, secrets.ErrNotFound)
			continue
		}
		wantValue(t, sc.store, pool, "token", "token of "+sc.name)
	}

	// A scope with nothing in it finds nothing, even where others have the key.
	for _, s := range []secrets.Store{base.Model("users", 3), base.Group("other"), base.Model("teams", 0)} {
		_, err := s.Get(ctx, pool, "token")
		wantErr(t, "Get in empty scope "+s.String(), err, secrets.ErrNotFound)
	}
}

func TestGlobalAndOwnerWithSameKey(t *testing.T) {
	pool := newDB(t)
	base := secrets.New(newRing(t, rawKey)).Group("users")

	// Owned first, then global, so that neither order hides a bug.
	mustSet(t, base.Owner(5), pool, "k", "owned")
	mustSet(t, base, pool, "k", "global")
	mustSet(t, base.Owner(0), pool, "k", "owner zero")

	wantValue(t, base, pool, "k", "global")
	wantValue(t, base.Owner(5), pool, "k", "owned")
	wantValue(t, base.Owner(0), pool, "k", "owner zero")
	if n := countRows(t, pool, ""); n != 3 {
		t.Errorf("%d rows; want 3", n)
	}
}

func TestMissingVersusStoredNull(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	s := secrets.New(newRing(t, rawKey)).Model("users", 1)

	v, err := s.Get(ctx, pool, "absent")
	wantErr(t, "Get of a missing key", err, secrets.ErrNotFound)
	if v != nil {
		t.Errorf("Get of a missing key returned a value of type %T", v)
	}
	if _, err := s.GetJSON(ctx, pool, "absent"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("GetJSON of a missing key: err = %v; want ErrNotFound", err)
	}
	if _, err := secrets.GetAs[string](ctx, s, pool, "absent"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("GetAs of a missing key: err = %v; want ErrNotFound", err)
	}

	mustSet(t, s, pool, "null", nil)
	v, err = s.Get(ctx, pool, "null")
	if err != nil || v != nil {
		t.Errorf("Get of a stored null = (%T, %v); want (nil, nil)", v, err)
	}
	raw, err := s.GetJSON(ctx, pool, "null")
	if err != nil || string(raw) != "null" {
		t.Errorf("GetJSON of a stored null: text differs or error: %v", err)
	}
	p, err := secrets.GetAs[*string](ctx, s, pool, "null")
	if err != nil || p != nil {
		t.Errorf("GetAs[*string] of a stored null: want (nil, nil), got error %v", err)
	}
}

type roundTrip struct {
	name     string
	value    any    // given to Set
	wantJSON string // exact text GetJSON returns
	wantGet  any    // what Get returns
}

func roundTrips() []roundTrip {
	return []roundTrip{
		{"uint64 beyond int64", uint64(12345678901234567890), "12345678901234567890",
			json.Number("12345678901234567890")},
		{"json.Number beyond int64", json.Number("12345678901234567890"), "12345678901234567890",
			json.Number("12345678901234567890")},
		{"2^53+1", int64(1<<53 + 1), "9007199254740993", json.Number("9007199254740993")},
		{"max int64", int64(math.MaxInt64), "9223372036854775807", json.Number("9223372036854775807")},
		{"-1", -1, "-1", json.Number("-1")},
		{"3.25", 3.25, "3.25", json.Number("3.25")},
		{"long decimal as json.Number", json.Number("0.10000000000000000000000001"),
			"0.10000000000000000000000001", json.Number("0.10000000000000000000000001")},
		{"empty string", "", `""`, ""},
		{"false", false, "false", false},
		{"true", true, "true", true},
		{"null", nil, "null", nil},
		{"empty array", []any{}, "[]", []any{}},
		{"empty object", map[string]any{}, "{}", map[string]any{}},
		{"unicode", "pässwörd ✓ 🔑 日本語 \u00a0", `"pässwörd ✓ 🔑 日本語 ` + "\u00a0" + `"`,
			"pässwörd ✓ 🔑 日本語 \u00a0"},
		{"PEM text", pemText, `"` + strings.ReplaceAll(pemText, "\n", `\n`) + `"`, pemText},
		{"quotes, backslashes, tab", "a\"b\\c\td", `"a\"b\\c\td"`, "a\"b\\c\td"},
		{"raw JSON", json.RawMessage(`{"n":12345678901234567890,"s":"x"}`),
			`{"n":12345678901234567890,"s":"x"}`,
			map[string]any{"n": json.Number("12345678901234567890"), "s": "x"}},
		{"nested", map[string]any{"a": []any{1, "two", nil, 3.5}},
			`{"a":[1,"two",null,3.5]}`,
			map[string]any{"a": []any{json.Number("1"), "two", nil, json.Number("3.5")}}},
	}
}

func TestRoundTripsAreExact(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	s := secrets.New(newRing(t, rawKey)).Model("users", 9)
	for _, tc := range roundTrips() {
		mustSet(t, s, pool, tc.name, tc.value)
	}
	for _, tc := range roundTrips() {
		raw, err := s.GetJSON(ctx, pool, tc.name)
		if err != nil {
			t.Errorf("%s: GetJSON: %v", tc.name, err)
		} else if string(raw) != tc.wantJSON {
			t.Errorf("%s: GetJSON text differs", tc.name)
		}
		got, err := s.Get(ctx, pool, tc.name)
		if err != nil {
			t.Errorf("%s: Get: %v", tc.name, err)
		} else if !reflect.DeepEqual(got, tc.wantGet) {
			t.Errorf("%s: Get value differs (got type %T, want type %T)", tc.name, got, tc.wantGet)
		}
	}
}

// TestStringValueNotValidUTF8 checks that a string value that is not
// valid UTF-8 is refused rather than silently changed: encoding/json
// replaces each bad byte with U+FFFD, so such a value would not round trip.
func TestStringValueNotValidUTF8(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	s := secrets.New(newRing(t, rawKey))
	for _, tc := range []struct {
		name  string
		value any
	}{
		{"string", "pass\xffword"},
		{"string in a map", map[string]string{"pw": "\xc3\x28"}},
		{"map key", map[string]int{"bad\xfekey": 1}},
	} {
		err := s.Set(ctx, pool, tc.name, tc.value)
		if err == nil {
			if got, gerr := s.Get(ctx, pool, tc.name); gerr == nil && !reflect.DeepEqual(got, tc.value) {
				t.Errorf("%s: Set accepted invalid UTF-8 and the value came back changed", tc.name)
			} else {
				t.Errorf("%s: Set accepted invalid UTF-8", tc.name)
			}
			continue
		}
		wantErr(t, tc.name, err, secrets.ErrInvalidArgument)
	}
}

type account struct {
	User   string            `json:"user"`
	Port   int               `json:"port"`
	Tags   []string          `json:"tags"`
	Limits map[string]uint64 `json:"limits"`
	Active bool              `json:"active"`
}

// getAs reads key as a T and compares it with want, reporting only the
// case name on a mismatch.
func getAs[T any](t *testing.T, s secrets.Store, db secrets.DBTX, key string, want T) {
	t.Helper()
	got, err := secrets.GetAs[T](context.Background(), s, db, key)
	if err != nil {
		t.Errorf("GetAs[%T] %q: %v", want, key, err)
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetAs[%T] %q: value differs", want, key)
	}
}

func TestGetAsTyped(t *testing.T) {
	pool := newDB(t)
	s := secrets.New(newRing(t, rawKey)).Group("typed")

	acct := account{User: "svc", Port: 5432, Tags: []string{"a", "b"},
		Limits: map[string]uint64{"max": 12345678901234567890}, Active: true}
	values := map[string]any{
		"struct":   acct,
		"map":      map[string]int{"one": 1, "two": 2},
		"strings":  []string{"x", "", "ü"},
		"int64":    int64(1<<53 + 1),
		"negative": int64(-1),
		"uint64":   uint64(12345678901234567890),
		"string":   pemText,
		"bool":     false,
		"float":    3.25,
	}
	for k, v := range values {
		mustSet(t, s, pool, k, v)
	}
	getAs(t, s, pool, "struct", acct)
	getAs(t, s, pool, "struct", &acct)
	getAs(t, s, pool, "map", map[string]int{"one": 1, "two": 2})
	getAs(t, s, pool, "strings", []string{"x", "", "ü"})
	getAs(t, s, pool, "int64", int64(1<<53+1))
	getAs(t, s, pool, "negative", int64(-1))
	getAs(t, s, pool, "uint64", uint64(12345678901234567890))
	getAs(t, s, pool, "string", pemText)
	getAs(t, s, pool, "bool", false)
	getAs(t, s, pool, "float", 3.25)
	getAs(t, s, pool, "int64", json.Number("9007199254740993"))
	getAs(t, s, pool, "map", map[string]any{"one": json.Number("1"), "two": json.Number("2")})
}

func TestGetAsWrongTypeHidesValue(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	s := secrets.New(newRing(t, rawKey)).Model("users", 42)
	const secretNumber = 987654321987
	const secretText = "correct-horse-battery-staple"
	mustSet(t, s, pool, "number", secretNumber)
	mustSet(t, s, pool, "text", secretText)

	_, err := secrets.GetAs[string](ctx, s, pool, "number")
	if err == nil {
		t.Fatalf("GetAs[string] of a number succeeded")
	}
	if strings.Contains(err.Error(), "987654321987") {
		t.Errorf("GetAs[string] of a number: error contains the value")
	}
	_, err = secrets.GetAs[int](ctx, s, pool, "text")
	if err == nil {
		t.Fatalf("GetAs[int] of a string succeeded")
	}
	if strings.Contains(err.Error(), "horse") {
		t.Errorf("GetAs[int] of a string: error contains the value")
	}
	var op *secrets.OpError
	if !errors.As(err, &op) || op.Op != "get" || op.Name.Key != "text" {
		t.Errorf("GetAs error is not an *OpError for get \"text\": %v", err)
	}
}

func TestValueColumnNeverHoldsPlaintext(t *testing.T) {
	pool := newDB(t)
	s := secrets.New(newRing(t, rawKey)).Model("users", 3)
	plain := map[string]string{
		"password": "correct horse battery staple, long enough to search for",
		"pem":      pemText,
		"unicode":  "päss wörd ✓ 日本語 geheimnis",
	}
	for k, v := range plain {
		mustSet(t, s, pool, k, v)
	}
	for k, v := range plain {
		stored := rawValue(t, pool, "users", ptr(3), k)
		if !strings.HasPrefix(stored, "v1.") {
			t.Errorf("%s: stored value does not start with v1.", k)
		}
		js, _ := json.Marshal(v)
		forbidden := map[string]string{
			"plaintext":           v,
			"plaintext JSON":      string(js),
			"base64 of plaintext": base64.StdEncoding.EncodeToString([]byte(v)),
			"base64 of JSON":      base64.StdEncoding.EncodeToString(js),
			"base64url of JSON":   base64.RawURLEncoding.EncodeToString(js),
			"first line":          strings.SplitN(v, "\n", 2)[0],
		}
		for kind, f := range forbidden {
			if strings.Contains(stored, f) {
				t.Errorf("%s: stored value contains the %s", k, kind)
			}
		}
		body, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(stored, "v1."))
		if err != nil {
			t.Errorf("%s: stored body is not base64url without padding", k)
			continue
		}
		if bytes.Contains(body, js) || bytes.Contains(body, []byte(v[:16])) {
			t.Errorf("%s: decoded body holds the plaintext", k)
		}
	}
}

// infoNames returns the names in infos, for go-cmp diffs.
func infoNames(infos []secrets.Info) []secrets.Name {
	out := make([]secrets.Name, len(infos))
	for i, in := range infos {
		out[i] = in.Name
	}
	return out
}

func TestList(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	base := secrets.New(newRing(t, rawKey))
	before := time.Now().Add(-time.Minute)

	g := base.Group("g")
	mustSet(t, g, pool, "b", 1)
	mustSet(t, g, pool, "a", 2)
	mustSet(t, g.Owner(5), pool, "c", 3)
	mustSet(t, g.Owner(0), pool, "d", 4)
	mustSet(t, base.Group("h"), pool, "e", 5)
	mustSet(t, base, pool, "f", 6)

	for _, tc := range []struct {
		store secrets.Store
		want  []secrets.Name
	}{
		{g, []secrets.Name{{Group: "g", Key: "a"}, {Group: "g", Key: "b"}}},
		{g.Owner(5), []secrets.Name{{Group: "g", Owner: ptr(5), Key: "c"}}},
		{g.Owner(0), []secrets.Name{{Group: "g", Owner: ptr(0), Key: "d"}}},
		{base.Group("h"), []secrets.Name{{Group: "h", Key: "e"}}},
		{base, []secrets.Name{{Group: "global", Key: "f"}}},
		{g.Owner(6), []secrets.Name{}},
		{base.Group("none"), []secrets.Name{}},
	} {
		infos, err := tc.store.List(ctx, pool)
		if err != nil {
			t.Errorf("List %s: %v", tc.store, err)
			continue
		}
		if diff := cmp.Diff(tc.want, infoNames(infos)); diff != "" {
			t.Errorf("List %s names (-want +got):\n%s", tc.store, diff)
		}
		for _, in := range infos {
			if in.ID == 0 || in.CreatedAt.Before(before) || in.UpdatedAt.Before(in.CreatedAt) ||
				in.UpdatedAt.After(time.Now().Add(time.Minute)) {
				t.Errorf("List %s %q: bad id or timestamps: id=%d created=%v updated=%v",
					tc.store, in.Name.Key, in.ID, in.CreatedAt, in.UpdatedAt)
			}
		}
	}
}

func TestListAll(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	base := secrets.New(newRing(t, rawKey))

	all, err := secrets.ListAll(ctx, pool)
	if err != nil || len(all) != 0 {
		t.Fatalf("ListAll of an empty table = %d rows, %v", len(all), err)
	}

	mustSet(t, base.Model("users", 2), pool, "z", 1)
	mustSet(t, base.Model("users", 10), pool, "a", 1)
	mustSet(t, base.Group("users"), pool, "y", 1)
	mustSet(t, base.Model("users", 0), pool, "x", 1)
	mustSet(t, base, pool, "k", 1)
	mustSet(t, base.Model("apps", 1), pool, "k", 1)

	all, err = secrets.ListAll(ctx, pool)
	if err != nil {
		t.Fatalf("ListAll: %v", err)
	}
	want := []secrets.Name{
		{Group: "apps", Owner: ptr(1), Key: "k"},
		{Group: "global", Key: "k"},
		{Group: "users", Key: "y"},
		{Group: "users", Owner: ptr(0), Key: "x"},
		{Group: "users", Owner: ptr(2), Key: "z"},
		{Group: "users", Owner: ptr(10), Key: "a"},
	}
	if diff := cmp.Diff(want, infoNames(all)); diff != "" {
		t.Errorf("ListAll names (-want +got):\n%s", diff)
	}
}

func TestSetMany(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	ring := newRing(t, rawKey)
	base := secrets.New(ring)

	entries := []secrets.Entry{
		{Name: secrets.Name{Group: "global", Key: "a"}, Value: "first a"},
		{Name: secrets.Name{Group: "users", Owner: ptr(1), Key: "a"}, Value: "users/1 a"},
		{Name: secrets.Name{Group: "users", Owner: ptr(0), Key: "a"}, Value: "users/0 a"},
		{Name: secrets.Name{Group: "users", Key: "a"}, Value: "users a"},
		{Name: secrets.Name{Group: "global", Key: "a"}, Value: "last a"},
		{Name: secrets.Name{Group: "global", Key: "n"}, Value: json.Number("12345678901234567890")},
		{Name: secrets.Name{Group: "global", Key: "null"}, Value: nil},
	}
	if err := secrets.SetMany(ctx, pool, ring, entries); err != nil {
		t.Fatalf("SetMany: %v", err)
	}
	if n := countRows(t, pool, ""); n != 6 {
		t.Errorf("%d rows after SetMany; want 6", n)
	}
	wantValue(t, base, pool, "a", "last a")
	wantValue(t, base.Model("users", 1), pool, "a", "users/1 a")
	wantValue(t, base.Model("users", 0), pool, "a", "users/0 a")
	wantValue(t, base.Group("users"), pool, "a", "users a")
	wantValue(t, base, pool, "n", json.Number("12345678901234567890"))
	wantValue(t, base, pool, "null", nil)

	// SetMany over existing rows updates them in place.
	err := secrets.SetMany(ctx, pool, ring, []secrets.Entry{
		{Name: secrets.Name{Group: "users", Owner: ptr(1), Key: "a"}, Value: "updated"},
		{Name: secrets.Name{Group: "global", Key: "a"}, Value: "updated global"},
	})
	if err != nil {
		t.Fatalf("second SetMany: %v", err)
	}
	if n := countRows(t, pool, ""); n != 6 {
		t.Errorf("%d rows after second SetMany; want 6", n)
	}
	wantValue(t, base.Model("users", 1), pool, "a", "updated")
	wantValue(t, base, pool, "a", "updated global")

	if err := secrets.SetMany(ctx, pool, ring, nil); err != nil {
		t.Errorf("SetMany of nothing: %v", err)
	}
}

func TestSetManyInvalidEntryWritesNothing(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	ring := newRing(t, rawKey)
	good := secrets.Entry{Name: secrets.Name{Group: "g", Key: "ok"}, Value: "v"}

	for _, tc := range []struct {
		name  string
		bad   secrets.Entry
		ring  *secrets.Keyring
		index int
	}{
		{"empty key", secrets.Entry{Name: secrets.Name{Group: "g"}, Value: 1}, ring, 2},
		{"empty group", secrets.Entry{Name: secrets.Name{Key: "k"}, Value: 1}, ring, 2},
		{"negative owner", secrets.Entry{Name: secrets.Name{Group: "g", Owner: ptr(-1), Key: "k"}}, ring, 2},
		{"NUL in key", secrets.Entry{Name: secrets.Name{Group: "g", Key: "a\x00b"}}, ring, 2},
		{"long key", secrets.Entry{Name: secrets.Name{Group: "g", Key: strings.Repeat("k", 151)}}, ring, 2},
		{"unencodable value", secrets.Entry{Name: secrets.Name{Group: "g", Key: "k"}, Value: make(chan int)},
			ring, 2},
		{"NaN value", secrets.Entry{Name: secrets.Name{Group: "g", Key: "k"}, Value: math.NaN()}, ring, 2},
		{"nil keyring", good, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entries := []secrets.Entry{good, good, tc.bad, good}
			db := &noSQL{}
			err := secrets.SetMany(ctx, db, tc.ring, entries)
			var ie *secrets.IndexError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v; want an *IndexError", err)
			}
			if ie.Index != tc.index {
				t.Errorf("IndexError.Index = %d; want %d", ie.Index, tc.index)
			}
			wantErr(t, "SetMany", err, secrets.ErrInvalidArgument)
			if db.calls != 0 {
				t.Errorf("SetMany reached the database %d times before failing", db.calls)
			}

			// Against the real database nothing is written either.
			if err := secrets.SetMany(ctx, pool, tc.ring, entries); err == nil {
				t.Errorf("SetMany against the database succeeded")
			}
			if n := countRows(t, pool, ""); n != 0 {
				t.Errorf("%d rows written by a failed SetMany", n)
			}
		})
	}
}

// TestSetManyNamesThatPrintAlike writes two different secrets whose
// names print the same: group "team/7" with no owner, and group "team"
// with owner 7. Both must be stored, each with its own value.
func TestSetManyNamesThatPrintAlike(t *testing.T) {
	pool := newDB(t)
	ring := newRing(t, rawKey)
	base := secrets.New(ring)
	a := secrets.Name{Group: "team/7", Key: "k"}
	b := secrets.Name{Group: "team", Owner: ptr(7), Key: "k"}
	if a.String() != b.String() {
		t.Logf("the names no longer print alike; the test still checks both are stored")
	}

	err := secrets.SetMany(t.Context(), pool, ring, []secrets.Entry{
		{Name: a, Value: "value of team/7 global"},
		{Name: b, Value: "value of team owner 7"},
	})
	if err != nil {
		t.Fatalf("SetMany: %v", err)
	}
	if n := countRows(t, pool, ""); n != 2 {
		t.Errorf("%d rows; want 2", n)
	}
	wantValue(t, base.Group("team/7"), pool, "k", "value of team/7 global")
	wantValue(t, base.Model("team", 7), pool, "k", "value of team owner 7")
}

func TestCallsInsideCallersTransaction(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	ring := newRing(t, rawKey)
	s := secrets.New(ring).Model("users", 1)

	t.Run("commit keeps", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		mustSet(t, s, tx, "committed", "v")
		wantValue(t, s, tx, "committed", "v")
		if err := secrets.SetMany(ctx, tx, ring, []secrets.Entry{
			{Name: s.Name("many"), Value: "m"},
		}); err != nil {
			t.Fatalf("SetMany in tx: %v", err)
		}
		if infos, err := s.List(ctx, tx); err != nil || len(infos) != 2 {
			t.Errorf("List in tx = %d, %v; want 2", len(infos), err)
		}
		if all, err := secrets.ListAll(ctx, tx); err != nil || len(all) != 2 {
			t.Errorf("ListAll in tx = %d, %v; want 2", len(all), err)
		}

		// Outside the transaction nothing is visible yet.
		_, err = s.Get(ctx, pool, "committed")
		wantErr(t, "Get outside an open transaction", err, secrets.ErrNotFound)

		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
		wantValue(t, s, pool, "committed", "v")
		wantValue(t, s, pool, "many", "m")
	})

	t.Run("rollback discards", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mustSet(t, s, tx, "rolled back", "v")
		mustSet(t, s, tx, "committed", "overwritten in tx")
		if err := secrets.SetMany(ctx, tx, ring, []secrets.Entry{
			{Name: s.Name("many rolled back"), Value: "m"},
		}); err != nil {
			t.Fatalf("SetMany in tx: %v", err)
		}
		if deleted, err := s.Delete(ctx, tx, "many"); err != nil || !deleted {
			t.Errorf("Delete in tx = %v, %v", deleted, err)
		}
		if _, err := secrets.GetAs[string](ctx, s, tx, "rolled back"); err != nil {
			t.Errorf("GetAs in tx: %v", err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatalf("rollback: %v", err)
		}

		for _, k := range []string{"rolled back", "many rolled back"} {
			_, err = s.Get(ctx, pool, k)
			wantErr(t, "Get "+k+" after rollback", err, secrets.ErrNotFound)
		}
		wantValue(t, s, pool, "committed", "v")
		wantValue(t, s, pool, "many", "m")
	})
}

// call runs one Store operation and returns its error.
type call struct {
	op  string
	run func(ctx context.Context, s secrets.Store, db secrets.DBTX, key string) error
}

func calls() []call {
	return []call{
		{"set", func(ctx context.Context, s secrets.Store, db secrets.DBTX, key string) error {
			return s.Set(ctx, db, key, "v")
		}},
		{"get", func(ctx context.Context, s secrets.Store, db secrets.DBTX, key string) error {
			_, err := s.Get(ctx, db, key)
			return err
		}},
		{"get", func(ctx context.Context, s secrets.Store, db secrets.DBTX, key string) error {
			_, err := s.GetJSON(ctx, db, key)
			return err
		}},
		{"get", func(ctx context.Context, s secrets.Store, db secrets.DBTX, key string) error {
			_, err := secrets.GetAs[int](ctx, s, db, key)
			return err
		}},
		{"delete", func(ctx context.Context, s secrets.Store, db secrets.DBTX, key string) error {
			_, err := s.Delete(ctx, db, key)
			return err
		}},
	}
}

func TestInvalidArguments(t *testing.T) {
	ctx := t.Context()
	base := secrets.New(newRing(t, rawKey))
	for _, tc := range []struct {
		name  string
		store secrets.Store
		key   string
		list  bool // the scope alone is invalid, so List fails too
	}{
		{"empty key", base, "", false},
		{"empty group", base.Group(""), "k", true},
		{"151-character key", base, strings.Repeat("k", 151), false},
		{"151-character key of 2-byte runes", base, strings.Repeat("é", 151), false},
		{"151-character group", base.Group(strings.Repeat("g", 151)), "k", true},
		{"key not UTF-8", base, "ke\xffy", false},
		{"group not UTF-8", base.Group("gr\xc3oup"), "k", true},
		{"NUL in key", base, "a\x00b", false},
		{"NUL in group", base.Group("g\x00"), "k", true},
		{"negative owner", base.Owner(-1), "k", true},
		{"min int64 owner", base.Owner(math.MinInt64), "k", true},
		{"zero Store", secrets.Store{}, "k", true},
		// Delete and List need no keyring; the other calls fail before SQL.
		{"nil keyring", secrets.New(nil), "k", false},
	} {
		for _, c := range calls() {
			if tc.name == "nil keyring" && c.op == "delete" {
				continue
			}
			db := &noSQL{}
			err := c.run(ctx, tc.store, db, tc.key)
			wantErr(t, tc.name+": "+c.op, err, secrets.ErrInvalidArgument)
			if db.calls != 0 {
				t.Errorf("%s: %s reached the database", tc.name, c.op)
			}
			var op *secrets.OpError
			if !errors.As(err, &op) || op.Op != c.op {
				t.Errorf("%s: %s error is not an *OpError for %q: %v", tc.name, c.op, c.op, err)
			}
		}
		db := &noSQL{}
		_, err := tc.store.List(ctx, db)
		if tc.list {
			wantErr(t, tc.name+": list", err, secrets.ErrInvalidArgument)
		} else if err != nil && !errors.Is(err, errNoSQL) {
			t.Errorf("%s: List failed although the scope is valid: %v", tc.name, err)
		}
	}

	// Values that JSON cannot hold.
	for _, v := range []any{make(chan int), func() {}, math.Inf(1), math.NaN(), complex(1, 2)} {
		db := &noSQL{}
		err := base.Set(ctx, db, "k", v)
		wantErr(t, reflect.TypeOf(v).String()+" value", err, secrets.ErrInvalidArgument)
		if db.calls != 0 {
			t.Errorf("Set of a %T reached the database", v)
		}
	}
	err := base.Set(ctx, &noSQL{}, "k", json.RawMessage(`{"pw":"not closed`))
	wantErr(t, "invalid json.RawMessage", err, secrets.ErrInvalidArgument)
	if err != nil && strings.Contains(err.Error(), "not closed") {
		t.Errorf("invalid json.RawMessage: error contains the value")
	}
}

// TestZeroKeyringIsInvalidArgument uses a Keyring that was not made by
// NewKeyring. It must fail like a nil keyring, not panic.
func TestZeroKeyringIsInvalidArgument(t *testing.T) {
	s := secrets.New(&secrets.Keyring{})
	for _, c := range calls() {
		if c.op == "delete" {
			continue // needs no keyring
		}
		err := func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = errors.New("panic")
				}
			}()
			return c.run(t.Context(), s, &noSQL{}, "k")
		}()
		if err != nil && err.Error() == "panic" {
			t.Errorf("%s with a zero Keyring panicked", c.op)
			continue
		}
		wantErr(t, c.op+" with a zero Keyring", err, secrets.ErrInvalidArgument)
	}

	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = errors.New("panic")
			}
		}()
		_, err = (&secrets.Keyring{}).Seal(secrets.Name{Group: "g", Key: "k"}, []byte("1"))
		return err
	}()
	if err == nil || err.Error() == "panic" {
		t.Errorf("Keyring.Seal of a zero Keyring: err = %v; want an error", err)
	}
}

func TestLongestNamesFit(t *testing.T) {
	pool := newDB(t)
	base := secrets.New(newRing(t, rawKey))
	for _, tc := range []struct{ name, group, key string }{
		{"ASCII", strings.Repeat("g", 150), strings.Repeat("k", 150)},
		{"2-byte runes", strings.Repeat("ü", 150), strings.Repeat("é", 150)},
		{"4-byte runes", strings.Repeat("𝔤", 150), strings.Repeat("🔑", 150)},
	} {
		s := base.Group(tc.group).Owner(1)
		mustSet(t, s, pool, tc.key, tc.name)
		wantValue(t, s, pool, tc.key, tc.name)
		infos, err := s.List(t.Context(), pool)
		if err != nil || len(infos) != 1 || infos[0].Name.Key != tc.key {
			t.Errorf("%s: List does not return the 150-character key: %d, %v", tc.name, len(infos), err)
		}
	}
}

func TestErrorStrings(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	base := secrets.New(newRing(t, rawKey))
	const value = "hunter2-do-not-print"
	mustSet(t, base.Model("users", 42), pool, "present", value)

	_, err := base.Model("users", 42).Get(ctx, pool, "api_token")
	if diff := cmp.Diff(`get users/42 "api_token": secret not found`, errString(err)); diff != "" {
		t.Errorf("Get users/42 missing (-want +got):\n%s", diff)
	}
	_, err = base.Get(ctx, pool, "api_token")
	if diff := cmp.Diff(`get global "api_token": secret not found`, errString(err)); diff != "" {
		t.Errorf("Get global missing (-want +got):\n%s", diff)
	}
	_, err = base.Model("users", 0).GetJSON(ctx, pool, "k")
	if diff := cmp.Diff(`get users/0 "k": secret not found`, errString(err)); diff != "" {
		t.Errorf("Get users/0 missing (-want +got):\n%s", diff)
	}

	// Every error a value can meet leaves the value out.
	other := secrets.New(newRing(t, hexKey)).Model("users", 42)
	_, wrongKey := other.Get(ctx, pool, "present")
	wantErr(t, "Get with another keyring", wrongKey, secrets.ErrWrongKey)
	_, wrongType := secrets.GetAs[int](ctx, base.Model("users", 42), pool, "present")
	setBad := base.Set(ctx, pool, "", value)
	for name, err := range map[string]error{
		"wrong key": wrongKey, "wrong type": wrongType, "set invalid": setBad,
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error contains the value", name)
		}
		if !strings.HasPrefix(err.Error(), "get users/42 \"present\": ") &&
			!strings.HasPrefix(err.Error(), "set global") {
			t.Errorf("%s: error does not start with op, scope and key: %v", name, err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// Listing and deleting decrypt nothing, so they work without a keyring.
func TestListAndDeleteNeedNoKeyring(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	if err := secrets.New(newRing(t, rawKey)).Model("users", 3).Set(ctx, pool, "k", 1); err != nil {
		t.Fatal(err)
	}

	bare := secrets.Store{}.Model("users", 3)
	infos, err := bare.List(ctx, pool)
	if err != nil || len(infos) != 1 || infos[0].Name.Key != "k" {
		t.Fatalf("list without a keyring: %+v, %v; want the one secret", infos, err)
	}
	if ok, err := bare.Delete(ctx, pool, "k"); err != nil || !ok {
		t.Fatalf("delete without a keyring: %v, %v; want true", ok, err)
	}
}
