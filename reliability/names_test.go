package reliability_test

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/internal/envelope"
	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// Kind "hostile names": keys and groups that a careless or hostile caller
// passes in. Each is either stored and isolated exactly (it reads back,
// lists and deletes as itself and nothing else) or refused with
// ErrInvalidArgument before any SQL runs.

// hostileNoSQL is a DBTX that fails the test when it is used: calls given
// it must fail before they reach the database.
type hostileNoSQL struct {
	t    testing.TB
	what string
}

var errHostileNoSQL = errors.New("hostileNoSQL: the database was reached")

func (d hostileNoSQL) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	d.t.Errorf("%s: SQL ran (Exec)", d.what)
	return pgconn.CommandTag{}, errHostileNoSQL
}

func (d hostileNoSQL) Query(context.Context, string, ...any) (pgx.Rows, error) {
	d.t.Errorf("%s: SQL ran (Query)", d.what)
	return nil, errHostileNoSQL
}

func (d hostileNoSQL) QueryRow(context.Context, string, ...any) pgx.Row {
	d.t.Errorf("%s: SQL ran (QueryRow)", d.what)
	return hostileErrRow{}
}

func (d hostileNoSQL) CopyFrom(context.Context, pgx.Identifier, []string,
	pgx.CopyFromSource) (int64, error) {
	d.t.Errorf("%s: SQL ran (CopyFrom)", d.what)
	return 0, errHostileNoSQL
}

type hostileErrRow struct{}

func (hostileErrRow) Scan(...any) error { return errHostileNoSQL }

// hostileName is one name to try as a key and as a group.
type hostileName struct {
	label string
	text  string
}

// acceptedNames are valid names: 1 to 150 characters of UTF-8 without NUL,
// however odd.
func acceptedNames() []hostileName {
	return []hostileName{
		{"single quote", `it's`}, {"double quotes", `"dq"`}, {"backticks", "`bt`"},
		{"lone single quote", `'`}, {"two single quotes", `''`}, {"lone double quote", `"`},
		{"backslash inside", `a\b`}, {"lone backslash", `\`}, {"two backslashes", `\\`},
		{"escaped NUL text", `\x00`}, {"unicode NUL text", `\u0000`}, {"trailing backslash", `a\`},
		{"percent", `%`}, {"underscore", `_`}, {"a_c", `a_c`}, {"a%", `a%`}, {"%a%", `%a%`},
		{"escaped underscore", `a\_c`}, {"two underscores", `__`}, {"a%c", `a%c`},
		{"sql drop", `'; DROP TABLE secrets; --`}, {"sql or", `" OR 1=1 --`},
		{"placeholder", `$1`}, {"question mark", `?`}, {"cast", `::text`},
		{"escape string", `E'\\x00'`}, {"comment", `/* x */`}, {"paren or", `) OR (1=1`},
		{"identifier drop", `secrets"; DROP TABLE secrets; --`}, {"semicolon", `;`},
		{"zero width space inside", "a\u200bb"}, {"zero width space", "\u200b"},
		{"byte order mark", "\ufeffa"}, {"zero width joiner", "a\u200d"}, {"word joiner", "\u2060"},
		{"right-to-left override", "\u202eabc"},
		{"combining acute", "e\u0301"}, {"lone combining mark", "\u0301"},
		{"many combining marks", "a" + strings.Repeat("\u0301", 60)},
		{"NFC cafe", "caf\u00e9"}, {"NFD cafe", "cafe\u0301"},
		{"150 ASCII", strings.Repeat("n", 150)}, {"150 two-byte", strings.Repeat("é", 150)},
		{"150 three-byte", strings.Repeat("€", 150)}, {"150 four-byte", strings.Repeat("😀", 150)},
		{"149 ASCII and a four-byte", strings.Repeat("m", 149) + "😀"},
		{"newline", "\n"}, {"newline inside", "a\nb"}, {"CRLF", "\r\n"}, {"tab", "\t"},
		{"ANSI colour", "\x1b[31mred\x1b[0m"}, {"DEL", "\x7f"}, {"NEL", "\u0085"},
		{"line separator", "\u2028"}, {"paragraph separator", "\u2029"}, {"SOH", "\x01"},
		{"backspace", "a\bb"}, {"space", " "}, {"padded", "  a  "},
		{"dot", "."}, {"two dots", ".."}, {"slash", "/"}, {"a/1", "a/1"}, {"minus one", "-1"},
		{"zero", "0"}, {"null", "null"}, {"emoji", "😀"}, {"omega", "Ω"}, {"dotted I", "İ"},
		{"sharp s", "ß"}, {"ligature", "ﬃ"}, {"Kelvin sign", "\u212a"}, {"Cyrillic a", "\u0430"},
		{"global", "global"}, {"fullwidth a", "ａ"}, {"private use", "\ue000"},
		{"noncharacter", "\ufffe"}, {"replacement char", "\ufffd"}, {"max rune", "\U0010ffff"},
	}
}

// refusedNames are names that must be refused before any SQL runs.
func refusedNames() []hostileName {
	return []hostileName{
		{"empty", ""}, {"NUL", "\x00"}, {"NUL inside", "a\x00b"}, {"NUL first", "\x00abc"},
		{"NUL last", "abc\x00"},
		{"byte ff", "\xff"}, {"byte ff inside", "a\xffb"}, {"overlong NUL", "\xc0\x80"},
		{"encoded surrogate", "\xed\xa0\x80"}, {"truncated rune", "\xe2\x82"},
		{"above U+10FFFF", "\xf4\x90\x80\x80"}, {"lone continuation byte", "a\x80"},
		{"151 ASCII", strings.Repeat("n", 151)}, {"151 two-byte", strings.Repeat("é", 151)},
		{"151 three-byte", strings.Repeat("€", 151)}, {"151 four-byte", strings.Repeat("😀", 151)},
		{"150 ASCII and a two-byte", strings.Repeat("n", 150) + "é"},
		{"150 valid and a bad byte", strings.Repeat("n", 149) + "\xff"},
	}
}

// hostileNameOK reports whether s is a valid key or group, as the contract
// states it: 1 to 150 characters of valid UTF-8 without NUL.
func hostileNameOK(s string) bool {
	n := utf8.RuneCountInString(s)
	return utf8.ValidString(s) && !strings.Contains(s, "\x00") && n >= 1 && n <= 150
}

// hostileRandomName returns a name of 0 to about 160 pieces, each a
// character that has tripped some SQL layer, escaper, normalizer or
// counter, or a stray byte.
func hostileRandomName(rng *rand.Rand) string {
	pieces := []string{"a", "Z", "0", "'", `"`, "\\", "%", "_", ";", "-", "/", " ", "\n", "\t",
		"\x00", "\xff", "\xc3", "\x80", "é", "€", "😀", "\u200b", "\u0301", "\u2028", "\x1b", "ß",
		"İ", "\ufeff", "$1", "--", "/*", "*/", "\\_", "\\%"}
	var b strings.Builder
	n := rng.IntN(160)
	if rng.IntN(3) == 0 {
		n = 145 + rng.IntN(10) // near the limit, where counting matters
	}
	for range n {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return b.String()
}

// hostileNameRow is what the test expects one row to hold.
type hostileNameRow struct {
	name  secrets.Name
	value string
}

// hostileNames is the state of one run: the table, and what it must hold.
type hostileNames struct {
	t     *testing.T
	f     *figures
	pool  *pgxpool.Pool
	ring  *secrets.Keyring
	model map[string]hostileNameRow // by hostileNameID
	seq   int
}

// TestHostileNamesStoredExactly stores, reads, lists and deletes secrets
// under odd but valid keys and groups (quotes, backslashes, LIKE
// wildcards, SQL fragments, invisible and combining characters, NFC and
// NFD spellings, 150 characters of 1 to 4 bytes, control characters), with
// and without owner 0, beside neighbours that a wildcard or a
// normalization would reach, and requires each to be isolated exactly.
// Then it rotates the table and reads every name back.
func TestHostileNamesStoredExactly(t *testing.T) {
	t.Parallel()
	_, pool := pgtest.Migrated(t)
	h := &hostileNames{t: t, f: kind("hostile names"), pool: pool,
		ring: hostileRing(t, "names-k1"), model: map[string]hostileNameRow{}}

	// Neighbours that LIKE, case folding or normalization would match.
	for _, n := range []string{"abc", "aXc", "ab", "abcd", "ABC", "a", "a\\c", "x", "cafe", "n"} {
		for _, owner := range []*int64{nil, hostileOwner(0)} {
			h.set(secrets.Name{Group: "names", Owner: owner, Key: n})
			h.set(secrets.Name{Group: n, Owner: owner, Key: "k"})
		}
	}
	h.checkAll("after the neighbours", true)

	for _, hn := range acceptedNames() {
		for _, owner := range []*int64{nil, hostileOwner(0)} {
			h.lifecycle(hn.label+" as key",
				secrets.Name{Group: "names", Owner: owner, Key: hn.text})
			h.lifecycle(hn.label+" as group",
				secrets.Name{Group: hn.text, Owner: owner, Key: "k"})
		}
	}

	// Random names built from hostile pieces: each is stored and isolated,
	// or refused before any SQL, as the contract says it must be.
	rng := rand.New(rand.NewPCG(150, 151))
	for i := range scale(40, 50) {
		text := hostileRandomName(rng)
		n := secrets.Name{Group: "names", Key: text}
		if i%2 == 1 {
			n = secrets.Name{Group: text, Owner: hostileOwner(int64(i)), Key: "k"}
		}
		what := fmt.Sprintf("random name %d", i)
		h.f.mutations.Add(1)
		if hostileNameOK(text) {
			h.lifecycle(what, n)
		} else {
			h.f.cases.Add(1)
			hostileCheckRefused(t, h.f, h.ring, what, n)
		}
	}

	// Everything at once, then a rotation over all of it.
	for _, hn := range acceptedNames() {
		h.set(secrets.Name{Group: "names", Key: hn.text})
		h.set(secrets.Name{Group: hn.text, Owner: hostileOwner(0), Key: hn.text})
	}
	h.checkAll("with every name stored", true)
	next := hostileRing(t, "names-k2", "names-k1")
	res, err := rotation.Rotate(context.Background(), pool, next, rotation.Options{BatchSize: 37})
	h.f.operations.Add(1)
	checkLeaks(t, h.f, "Rotate result", formatted(res))
	if err != nil || res.Failed != 0 || res.Rotated != int64(len(h.model)) {
		t.Errorf("Rotate over hostile names: %d rotated, %d failed of %d, %v",
			res.Rotated, res.Failed, len(h.model), err)
	}
	h.ring = hostileRing(t, "names-k2")
	h.checkAll("after rotation", true)
}

// set stores a new distinctive value under n and records it.
func (h *hostileNames) set(n secrets.Name) {
	h.t.Helper()
	h.seq++
	v := hostileValue(fmt.Sprintf("name-%d", h.seq), 24)
	if err := hostileStore(h.ring, n).Set(context.Background(), h.pool, n.Key, v); err != nil {
		checkLeaks(h.t, h.f, "Set error", err.Error())
		h.t.Fatalf("Set %s: %v", n, err)
	}
	h.f.operations.Add(1)
	h.model[hostileNameID(n)] = hostileNameRow{n, v}
}

// lifecycle checks that n, absent, is not found and deletes nothing; set,
// reads back as itself and lists exactly; deleted, goes alone.
func (h *hostileNames) lifecycle(what string, n secrets.Name) {
	t := h.t
	t.Helper()
	ctx := context.Background()
	s := hostileStore(h.ring, n)
	h.f.cases.Add(1)
	if _, ok := h.model[hostileNameID(n)]; ok {
		return // a neighbour of that name exists; the neighbours cover it
	}

	_, err := s.Get(ctx, h.pool, n.Key)
	h.checkMessage(what, err)
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("%s: Get before Set: %v, want ErrNotFound", what, err)
	}
	if ok, err := s.Delete(ctx, h.pool, n.Key); ok || err != nil {
		t.Errorf("%s: Delete before Set: %v, %v; want false, nil", what, ok, err)
	}
	h.f.operations.Add(2)

	h.set(n)
	want := h.model[hostileNameID(n)].value
	got, err := s.Get(ctx, h.pool, n.Key)
	h.f.operations.Add(1)
	if err != nil || got != want {
		h.checkMessage(what, err)
		t.Errorf("%s: Get after Set: (%T, %v), want its own value", what, got, err)
	}
	h.checkList(what, n)
	h.checkAll(what+" stored", h.seq%10 == 0)

	ok, err := s.Delete(ctx, h.pool, n.Key)
	h.f.operations.Add(1)
	if !ok || err != nil {
		t.Errorf("%s: Delete: %v, %v; want true, nil", what, ok, err)
	}
	delete(h.model, hostileNameID(n))
	_, err = s.Get(ctx, h.pool, n.Key)
	h.f.operations.Add(1)
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("%s: Get after Delete: %v, want ErrNotFound", what, err)
	}
	h.checkAll(what+" deleted", false)
}

// checkMessage checks an error message for leaks and for characters that
// would break or forge a log line.
func (h *hostileNames) checkMessage(what string, err error) {
	h.t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	checkLeaks(h.t, h.f, what+": error", msg)
	for _, r := range msg {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			h.t.Errorf("%s: error message holds the raw character %U", what, r)
			return
		}
	}
}

// checkList checks that the scope of n lists exactly the model's names of
// that scope.
func (h *hostileNames) checkList(what string, n secrets.Name) {
	h.t.Helper()
	infos, err := hostileStore(h.ring, n).List(context.Background(), h.pool)
	h.f.operations.Add(1)
	if err != nil {
		h.t.Errorf("%s: List: %v", what, err)
		return
	}
	var want []string
	for _, row := range h.model {
		if row.name.Group == n.Group && (row.name.Owner == nil) == (n.Owner == nil) &&
			(n.Owner == nil || *row.name.Owner == *n.Owner) {
			want = append(want, hostileNameID(row.name))
		}
	}
	if diff := cmp.Diff(hostileSortedIDs(want), hostileInfoIDs(infos)); diff != "" {
		h.t.Errorf("%s: List of its scope (-want +got):\n%s", what, diff)
	}
}

// checkAll checks that ListAll shows exactly the model and, if readAll,
// that every row of the model reads back its value.
func (h *hostileNames) checkAll(when string, readAll bool) {
	t := h.t
	t.Helper()
	ctx := context.Background()
	infos, err := secrets.ListAll(ctx, h.pool)
	h.f.operations.Add(1)
	if err != nil {
		t.Fatalf("%s: ListAll: %v", when, err)
	}
	var want []string
	for id := range h.model {
		want = append(want, id)
	}
	got := hostileInfoIDs(infos)
	if diff := cmp.Diff(hostileSortedIDs(want), got); diff != "" {
		t.Errorf("%s: ListAll (-want +got):\n%s", when, diff)
		missing := 0
		for _, id := range want {
			if !slices.Contains(got, id) {
				missing++
			}
		}
		if missing > 0 {
			h.f.lose(t, int64(missing), when+": rows missing from ListAll")
		}
	}
	if !readAll {
		return
	}
	var lost, unread int64
	for _, row := range h.model {
		v, err := hostileStore(h.ring, row.name).Get(ctx, h.pool, row.name.Key)
		h.f.operations.Add(1)
		switch {
		case errors.Is(err, secrets.ErrNotFound):
			lost++
		case err != nil:
			unread++
		case v != row.value:
			lost++
		}
	}
	if lost > 0 {
		h.f.lose(t, lost, when+": rows missing or holding another value")
	}
	if unread > 0 {
		h.f.unread(t, unread, when+": rows that do not open")
	}
}

func hostileSortedIDs(ids []string) []string {
	sort.Strings(ids)
	if ids == nil {
		return []string{}
	}
	return ids
}

func hostileInfoIDs(infos []secrets.Info) []string {
	ids := make([]string, len(infos))
	for i, in := range infos {
		ids[i] = hostileNameID(in.Name)
	}
	return hostileSortedIDs(ids)
}

// TestHostileNamesRefusedBeforeSQL passes invalid keys and groups (empty,
// NUL, invalid UTF-8, more than 150 characters of 1 to 4 bytes) and
// negative owners to every call, with a database handle that fails the
// test when used: each call must return ErrInvalidArgument without
// reaching it.
func TestHostileNamesRefusedBeforeSQL(t *testing.T) {
	t.Parallel()
	f := kind("hostile names")
	ring := hostileRing(t, "names-k1")

	var names []secrets.Name
	var labels []string
	for _, hn := range refusedNames() {
		for _, owner := range []*int64{nil, hostileOwner(0)} {
			names = append(names, secrets.Name{Group: "names", Owner: owner, Key: hn.text},
				secrets.Name{Group: hn.text, Owner: owner, Key: "k"})
			labels = append(labels, hn.label+" as key", hn.label+" as group")
		}
	}
	for _, owner := range []int64{-1, math.MinInt64} {
		names = append(names, secrets.Name{Group: "names", Owner: hostileOwner(owner), Key: "k"})
		labels = append(labels, fmt.Sprintf("owner %d", owner))
	}

	for i, n := range names {
		f.cases.Add(1)
		hostileCheckRefused(t, f, ring, labels[i], n)
	}
}

// hostileCheckRefused calls every function that takes a name with n,
// through a handle that fails the test when used, and requires
// ErrInvalidArgument.
func hostileCheckRefused(t *testing.T, f *figures, ring *secrets.Keyring, what string,
	n secrets.Name) {
	t.Helper()
	ctx := context.Background()
	value := hostileValue("refused-name-value", 30)
	s := hostileStore(ring, n)
	calls := map[string]func(secrets.DBTX) error{
		"Set": func(db secrets.DBTX) error { return s.Set(ctx, db, n.Key, value) },
		"Get": func(db secrets.DBTX) error { _, err := s.Get(ctx, db, n.Key); return err },
		"GetJSON": func(db secrets.DBTX) error {
			_, err := s.GetJSON(ctx, db, n.Key)
			return err
		},
		"GetAs": func(db secrets.DBTX) error {
			_, err := secrets.GetAs[string](ctx, s, db, n.Key)
			return err
		},
		"Delete": func(db secrets.DBTX) error {
			_, err := s.Delete(ctx, db, n.Key)
			return err
		},
		"SetMany": func(db secrets.DBTX) error {
			return secrets.SetMany(ctx, db, ring, []secrets.Entry{
				{Name: secrets.Name{Group: "names", Key: "fine"}, Value: value},
				{Name: n, Value: value},
			})
		},
		"Seal": func(secrets.DBTX) error { _, err := ring.Seal(n, []byte(`"x"`)); return err },
	}
	if !hostileNameOK(n.Group) || n.Owner != nil && *n.Owner < 0 { // the scope's calls fail too
		calls["List"] = func(db secrets.DBTX) error { _, err := s.List(ctx, db); return err }
		calls["List without keyring"] = func(db secrets.DBTX) error {
			_, err := hostileStore(nil, n).List(ctx, db)
			return err
		}
	}
	for op, call := range calls {
		err := call(hostileNoSQL{t, what + ": " + op})
		f.operations.Add(1)
		if !errors.Is(err, secrets.ErrInvalidArgument) {
			t.Errorf("%s: %s: %v; want ErrInvalidArgument", what, op, err)
			continue
		}
		checkLeaks(t, f, what+": "+op+" error", err.Error())
		var ie *secrets.IndexError
		if op == "SetMany" && (!errors.As(err, &ie) || ie.Index != 1) {
			t.Errorf("%s: SetMany: %v; want an IndexError for entry 1", what, err)
		}
	}
}

// TestHostileNamesPrintAlike writes secrets whose names print alike to a
// careless eye (group "a/1" without owner and group "a" with owner 1,
// quotes inside names, NFC and NFD, invisible characters), through one
// SetMany and through rotation failure reports, and requires each to stay
// a row of its own and to print differently.
func TestHostileNamesPrintAlike(t *testing.T) {
	t.Parallel()
	f := kind("hostile names")
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	ring := hostileRing(t, "names-k1")
	names := []secrets.Name{
		{Group: "a/1", Key: "k"}, {Group: "a", Owner: hostileOwner(1), Key: "k"},
		{Group: `"a/1"`, Key: "k"}, {Group: `"a"/1`, Key: "k"}, {Group: "a", Key: "k"},
		{Group: "a", Owner: hostileOwner(0), Key: "k"}, {Group: "a ", Key: "k"},
		{Group: "a\u200b", Key: "k"}, {Group: "\u0430", Key: "k"},
		{Group: "a/1", Owner: hostileOwner(1), Key: "k"},
		{Group: "a", Owner: hostileOwner(1), Key: "k/1"}, {Group: "a", Key: `k"`},
		{Group: "a", Key: `k\"`},
		{Group: `a "k"`, Key: "k"}, {Group: "a", Key: `k" "k`}, {Group: "caf\u00e9", Key: "k"},
		{Group: "cafe\u0301", Key: "k"}, {Group: "g", Key: "caf\u00e9"},
		{Group: "g", Key: "cafe\u0301"},
		{Group: "a\n1", Key: "k"}, {Group: `a\n1`, Key: "k"}, {Group: "global", Key: "k"},
		{Group: "global", Owner: hostileOwner(0), Key: "k"},
	}
	f.cases.Add(int64(len(names)))

	// Every name prints differently, in Name.String and in errors, and in
	// printable ASCII, so that names that differ also look different.
	printed := map[string]int{}
	for i, n := range names {
		if strings.IndexFunc(n.String(), func(r rune) bool { return r < ' ' || r > '~' }) >= 0 {
			t.Errorf("name %d prints as %+q: not printable ASCII", i, n.String())
		}
		_, err := hostileStore(ring, n).Get(ctx, pool, n.Key)
		f.operations.Add(1)
		for _, s := range []string{"name " + n.String(), "error " + fmt.Sprint(err)} {
			if j, dup := printed[s]; dup {
				t.Errorf("names %d and %d print alike: %q", j, i, s)
			}
			printed[s] = i
		}
	}

	// One SetMany writes one row per name.
	entries := make([]secrets.Entry, len(names))
	want := map[string]string{}
	for i, n := range names {
		entries[i] = secrets.Entry{Name: n, Value: hostileValue(fmt.Sprintf("alike-%d", i), 20)}
		want[hostileNameID(n)] = entries[i].Value.(string)
	}
	if err := secrets.SetMany(ctx, pool, ring, entries); err != nil {
		t.Fatalf("SetMany: %v", err)
	}
	f.operations.Add(1)
	var lost int64
	for _, e := range entries {
		got, err := hostileStore(ring, e.Name).Get(ctx, pool, e.Name.Key)
		f.operations.Add(1)
		if err != nil || got != e.Value {
			lost++
		}
	}
	if lost > 0 {
		f.lose(t, lost, "names that print alike: SetMany rows missing or holding another value")
	}

	// Rotation reports each failed row by its own name.
	if _, err := pool.Exec(ctx, `UPDATE secrets SET value = 'v1.AAAA'`); err != nil {
		t.Fatal(err)
	}
	f.mutations.Add(int64(len(names)))
	res, err := rotation.Rotate(ctx, pool, hostileRing(t, "names-k2", "names-k1"),
		rotation.Options{BatchSize: 5})
	f.operations.Add(1)
	checkLeaks(t, f, "Rotate result", formatted(res))
	if err != nil || res.Failed != int64(len(names)) {
		t.Fatalf("Rotate: %d failed, %v; want all %d failed", res.Failed, err, len(names))
	}
	reported := map[string]bool{}
	seen := map[string]bool{}
	for _, fl := range res.Failures {
		id := hostileNameID(fl.Name)
		if _, ok := want[id]; !ok {
			t.Errorf("Rotate reports a failure for %s, which was never written", fl.Name)
		}
		if reported[fl.Name.String()] || seen[id] {
			t.Errorf("Rotate reports two failures that print as %s", fl.Name)
		}
		reported[fl.Name.String()], seen[id] = true, true
	}
	if len(seen) != len(names) {
		t.Errorf("Rotate reports %d distinct names; want %d", len(seen), len(names))
	}
}

// TestHostileNamesInTable puts rows with names the library refuses (an
// empty key, an empty group), sealed for exactly those names, straight
// into the table, as an adopted table might hold them. Verify may read
// them; Rotate must report them without touching them; ListAll shows them;
// Get and Delete refuse the names before any SQL.
func TestHostileNamesInTable(t *testing.T) {
	t.Parallel()
	f := kind("hostile names")
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	_, raw := hostileKey("names-k1")
	key, err := envelope.NewKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	names := []secrets.Name{{Group: "", Key: "k"}, {Group: "g", Key: ""}}
	for _, n := range names {
		text, err := key.Seal(envelope.Scope{Group: n.Group, Key: n.Key}, []byte(`"s3cr3t-odd"`),
			crand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO secrets (key, "group", owner_id, value)
			VALUES ($1, $2, NULL, $3)`, n.Key, n.Group, text); err != nil {
			t.Fatal(err)
		}
	}
	secretValue("s3cr3t-odd")
	f.cases.Add(int64(len(names)))
	var before []string
	if err := pool.QueryRow(ctx, `SELECT array_agg(value ORDER BY id) FROM secrets`).
		Scan(&before); err != nil {
		t.Fatal(err)
	}

	rep, err := rotation.Verify(ctx, pool, hostileRing(t, "names-k1"), rotation.Options{})
	f.operations.Add(1)
	checkLeaks(t, f, "Verify report", formatted(rep))
	t.Logf("Verify over rows with refused names: %d current, %d unreadable, %v",
		rep.Current, rep.Unreadable, err)

	next := hostileRing(t, "names-k2", "names-k1")
	res, err := rotation.Rotate(ctx, pool, next, rotation.Options{})
	f.operations.Add(1)
	checkLeaks(t, f, "Rotate result", formatted(res))
	if err != nil || res.Failed != 2 {
		t.Errorf("Rotate over rows with refused names: %+v, %v; want 2 failed", res, err)
	}
	for _, fl := range res.Failures {
		if !errors.Is(fl.Err, secrets.ErrInvalidArgument) {
			t.Errorf("Rotate failure for %s: %v; want ErrInvalidArgument", fl.Name, fl.Err)
		}
	}
	var after []string
	if err := pool.QueryRow(ctx, `SELECT array_agg(value ORDER BY id) FROM secrets`).
		Scan(&after); err != nil || !slices.Equal(before, after) {
		t.Errorf("Rotate changed rows whose names it refuses (%v)", err)
	}

	infos, err := secrets.ListAll(ctx, pool)
	f.operations.Add(1)
	if err != nil || len(infos) != len(names) {
		t.Errorf("ListAll: %d rows, %v; want the %d rows", len(infos), err, len(names))
	}
	for _, n := range names {
		s := hostileStore(hostileRing(t, "names-k1"), n)
		_, err := s.Get(ctx, hostileNoSQL{t, "Get " + n.String()}, n.Key)
		_, derr := s.Delete(ctx, hostileNoSQL{t, "Delete " + n.String()}, n.Key)
		f.operations.Add(2)
		if !errors.Is(err, secrets.ErrInvalidArgument) ||
			!errors.Is(derr, secrets.ErrInvalidArgument) {
			t.Errorf("%s: Get %v, Delete %v; want ErrInvalidArgument", n, err, derr)
		}
	}
}
