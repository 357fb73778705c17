package secrets_test

// Attack tests: hostile keys and groups. Each name must be stored and
// isolated exactly, or refused with ErrInvalidArgument before any SQL.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

func hostileNames() []string {
	return []string{
		`'`, `''`, `"`, `\`, `\\`, `%`, `_`, `%%`, `a%`, `%a`, `a_c`, `abc`, `a\%`, `a\_c`,
		`'; DROP TABLE secrets; --`, `' OR '1'='1`, `") OR ("1"="1`, `$1`, `$$`, `E'\x41'`,
		"tab\there", "new\nline", "cr\rhere", " lead", "trail ", " ", "  ", "\u00a0",
		"zero\u200bwidth", "zerowidth", "\u200b", "\ufeffbom", "bom",
		"e\u0301", "\u00e9", // NFD and NFC spellings of é
		"\u212b", "\u00c5", "A\u030a", // three spellings of Å
		"ﬁ", "fi", "ǅ", "İ", "i̇", "ß", "ss", "Σ", "σ", "ς",
		"\u202eevil", "\x1b[31mred", "\x7f", "\U0001F600", "a/b", "a/1", "global", "GLOBAL",
		"-", "--", "*", "?", "[a-z]", "^$", ".*", "null", "NULL",
	}
}

func TestAttackHostileNamesIsolated(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	base := secrets.New(newRing(t, rawKey))

	names := hostileNames()
	// As keys: each in its own row, read back exactly.
	g := base.Group("hostile")
	for i, n := range names {
		mustSet(t, g, pool, n, fmt.Sprintf("key-%d", i))
	}
	for i, n := range names {
		got, err := secrets.GetAs[string](ctx, g, pool, n)
		if err != nil || got != fmt.Sprintf("key-%d", i) {
			t.Errorf("key %q: read back %v / wrong value", n, err)
		}
	}
	if c := countRows(t, pool, `"group" = 'hostile'`); c != len(names) {
		t.Errorf("%d rows for %d distinct keys", c, len(names))
	}
	infos, err := g.List(ctx, pool)
	if err != nil || len(infos) != len(names) {
		t.Errorf("List of group hostile: %d entries, %v; want %d", len(infos), err, len(names))
	}

	// As groups: List of each sees only its own row; % and _ are no wildcards.
	for i, n := range names {
		mustSet(t, base.Group(n), pool, "k", fmt.Sprintf("group-%d", i))
		mustSet(t, base.Group(n).Owner(0), pool, "k", fmt.Sprintf("group-%d-o0", i))
	}
	for i, n := range names {
		infos, err := base.Group(n).List(ctx, pool)
		if err != nil || len(infos) != 1 || infos[0].Name.Group != n {
			t.Errorf("List group %q: %d entries, %v; want exactly its own", n, len(infos), err)
		}
		got, err := secrets.GetAs[string](ctx, base.Group(n), pool, "k")
		if err != nil || got != fmt.Sprintf("group-%d", i) {
			t.Errorf("group %q: wrong read back (%v)", n, err)
		}
	}
	// Delete with wildcard-looking names removes exactly one row.
	before := countRows(t, pool, "")
	for _, n := range []string{"%", "_", "a%", "a_c", `\`} {
		ok, err := g.Delete(ctx, pool, n)
		if err != nil || !ok {
			t.Errorf("delete key %q: %v, %v", n, ok, err)
		}
	}
	if after := countRows(t, pool, ""); after != before-5 {
		t.Errorf("deleting 5 wildcard-looking keys removed %d rows", before-after)
	}
	for _, n := range []string{"abc", "%a", "%%", "a\\%", "a\\_c"} {
		if _, err := g.GetJSON(ctx, pool, n); err != nil {
			t.Errorf("key %q gone after deleting wildcard keys: %v", n, err)
		}
	}
	if ok, err := base.Group("%").Delete(ctx, pool, "k"); err != nil || !ok {
		t.Errorf("delete in group %%: %v %v", ok, err)
	}
	if _, err := base.Group("global").GetJSON(ctx, pool, "k"); err != nil {
		t.Errorf("global/k gone after deleting %%/k: %v", err)
	}
}

func TestAttackInvalidNamesRefusedBeforeSQL(t *testing.T) {
	ctx := context.Background()
	base := secrets.New(newRing(t, rawKey))
	bad := map[string]string{
		"empty":           "",
		"NUL":             "a\x00b",
		"NUL only":        "\x00",
		"invalid UTF-8":   "a\xffb",
		"lone surrogate":  "\xed\xa0\x80",
		"overlong":        "\xc0\xaf",
		"truncated rune":  "\xe2\x82",
		"151 ASCII":       strings.Repeat("a", 151),
		"151 two-byte":    strings.Repeat("é", 151),
		"151 four-byte":   strings.Repeat("\U0001F600", 151),
		"150+combining":   strings.Repeat("a", 150) + "\u0301",
		"very long":       strings.Repeat("x", 70000),
		"150 + trail spc": strings.Repeat("a", 150) + " ",
	}
	for what, n := range bad {
		for _, role := range []string{"key", "group"} {
			db := &noSQL{}
			s, key := base, n
			if role == "group" {
				s, key = base.Group(n), "k"
			}
			errs := map[string]error{}
			errs["Set"] = s.Set(ctx, db, key, "v")
			_, errs["Get"] = s.Get(ctx, db, key)
			_, errs["Delete"] = s.Delete(ctx, db, key)
			if role == "group" {
				_, errs["List"] = s.List(ctx, db)
			}
			errs["SetMany"] = secrets.SetMany(ctx, db, newRing(t, rawKey),
				[]secrets.Entry{{Name: s.Name(key), Value: 1}})
			for op, err := range errs {
				if !errors.Is(err, secrets.ErrInvalidArgument) {
					t.Errorf("%s %s as %s: err %v; want ErrInvalidArgument", op, what, role, err)
				}
			}
			if db.calls != 0 {
				t.Errorf("%s as %s: SQL ran %d times", what, role, db.calls)
			}
		}
	}
}

func TestAttackLongestNamesStore(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	base := secrets.New(newRing(t, rawKey))
	for what, n := range map[string]string{
		"150 ASCII":      strings.Repeat("a", 150),
		"150 two-byte":   strings.Repeat("é", 150),
		"150 three-byte": strings.Repeat("€", 150),
		"150 four-byte":  strings.Repeat("\U0001F600", 150),
		"149 + space":    strings.Repeat("b", 149) + " ",
		"150 spaces":     strings.Repeat(" ", 150),
	} {
		s := base.Group(n)
		if err := s.Set(ctx, pool, n, what); err != nil {
			t.Errorf("%s: Set: %v", what, err)
			continue
		}
		got, err := secrets.GetAs[string](ctx, s, pool, n)
		if err != nil || got != what {
			t.Errorf("%s: read back: %v", what, err)
		}
		if err := secrets.SetMany(ctx, pool, newRing(t, rawKey),
			[]secrets.Entry{{Name: s.Name(n + ""), Value: what}}); err != nil {
			t.Errorf("%s: SetMany: %v", what, err)
		}
	}
	// Trailing spaces are significant: "a" and "a " are two secrets.
	g := base.Group("spaces")
	mustSet(t, g, pool, "a", "no space")
	mustSet(t, g, pool, "a ", "one space")
	wantValue(t, g, pool, "a", "no space")
	wantValue(t, g, pool, "a ", "one space")
}

// Names that print alike: NFC vs NFD, zero-width. Where do they collide?
func TestAttackNamesThatPrintAlike(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	ring := newRing(t, rawKey)
	base := secrets.New(ring)
	pairs := [][2]string{
		{"caf\u00e9", "cafe\u0301"},
		{"token", "tok\u200ben"},
		{"\u00c5", "\u212b"},
	}
	for _, p := range pairs {
		err := secrets.SetMany(ctx, pool, ring, []secrets.Entry{
			{Name: secrets.Name{Group: "g", Key: p[0]}, Value: "first"},
			{Name: secrets.Name{Group: "g", Key: p[1]}, Value: "second"},
		})
		if err != nil {
			t.Fatalf("SetMany %q/%q: %v", p[0], p[1], err)
		}
		wantValue(t, base.Group("g"), pool, p[0], "first")
		wantValue(t, base.Group("g"), pool, p[1], "second")

		// Name.String (used in errors, rotation failure reports and the
		// CLI's rotate/verify output) must tell them apart.
		a, b := secrets.Name{Group: "g", Key: p[0]}, secrets.Name{Group: "g", Key: p[1]}
		if a.String() == b.String() {
			t.Errorf("Name.String is the same for %+q and %+q", p[0], p[1])
		}
		if visible(a.String()) == visible(b.String()) {
			t.Logf("Name.String prints %+q and %+q alike on screen: %s", p[0], p[1], a.String())
		}
		// As groups.
		ga, gb := secrets.Name{Group: p[0], Key: "k"}, secrets.Name{Group: p[1], Key: "k"}
		if visible(ga.String()) == visible(gb.String()) {
			t.Logf("groups %+q and %+q print alike: %s", p[0], p[1], ga.String())
		}
	}
}

// visible approximates what a terminal shows: combining marks and
// zero-width characters take no cell; compare after normalising the
// common compositions by hand.
func visible(s string) string {
	r := strings.NewReplacer("e\u0301", "\u00e9", "\u200b", "", "\u212b", "\u00c5")
	return r.Replace(s)
}
