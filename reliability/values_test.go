package reliability_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// Kind "hostile values": values that a careless or hostile caller passes
// to Set: text that is not valid UTF-8 wherever encoding/json would
// replace it, nesting and sizes at and past the limits, numbers that
// float64 cannot hold, every escape. Each is refused with
// ErrInvalidArgument and nothing written, or comes back exactly.

// hostileVals is the table and scope of one values test.
type hostileVals struct {
	t    *testing.T
	f    *figures
	pool *pgxpool.Pool
	s    secrets.Store
	ring *secrets.Keyring
}

func newHostileVals(t *testing.T) *hostileVals {
	_, pool := pgtest.Migrated(t)
	ring := hostileRing(t, "values-k1")
	return &hostileVals{t: t, f: kind("hostile values"), pool: pool, ring: ring,
		s: secrets.New(ring).Group("values").Owner(0)}
}

// count returns the number of rows in the table.
func (h *hostileVals) count() int {
	h.t.Helper()
	var n int
	err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM secrets`).Scan(&n)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// refused checks that Set and SetMany refuse value under key with
// ErrInvalidArgument, and that nothing is written: the row count stays,
// and the value set before under key is still there. It returns Set's
// error.
func (h *hostileVals) refused(what, key string, value any) error {
	t := h.t
	t.Helper()
	ctx := context.Background()
	prev := hostileValue("prev-"+key, 24)
	if err := h.s.Set(ctx, h.pool, key, prev); err != nil {
		t.Fatalf("%s: Set of the previous value: %v", what, err)
	}
	before := h.count()
	h.f.cases.Add(1)
	h.f.mutations.Add(1)

	err := h.s.Set(ctx, h.pool, key, value)
	manyErr := secrets.SetMany(ctx, h.pool, h.ring, []secrets.Entry{
		{Name: h.s.Name(key + "-fine"), Value: "fine"},
		{Name: h.s.Name(key), Value: value},
	})
	h.f.operations.Add(3)
	var ie *secrets.IndexError
	switch {
	case !errors.Is(err, secrets.ErrInvalidArgument):
		t.Errorf("%s: Set: %v; want ErrInvalidArgument", what, err)
	case !errors.Is(manyErr, secrets.ErrInvalidArgument) || !errors.As(manyErr, &ie) ||
		ie.Index != 1:
		t.Errorf("%s: SetMany: %v; want an IndexError for entry 1 with ErrInvalidArgument",
			what, manyErr)
	}
	for _, e := range []error{err, manyErr} {
		if e != nil {
			checkLeaks(t, h.f, what+": error", e.Error())
		}
	}

	if n := h.count(); n != before && manyErr != nil {
		t.Errorf("%s: a refused SetMany changed the table from %d to %d rows", what, before, n)
	}
	if err == nil {
		return nil // the value was written; that is the failure reported above
	}
	got, gerr := h.s.Get(ctx, h.pool, key)
	h.f.operations.Add(1)
	if gerr != nil || got != prev {
		h.f.lose(t, 1, what+": the previous value did not survive a refused Set")
	}
	return err
}

// roundTrip sets value under key and requires GetJSON to return wantJSON
// exactly and Get to return a value equal to wantGet.
func (h *hostileVals) roundTrip(what, key string, value any, wantJSON string, wantGet any) {
	t := h.t
	t.Helper()
	ctx := context.Background()
	h.f.cases.Add(1)
	if err := h.s.Set(ctx, h.pool, key, value); err != nil {
		checkLeaks(t, h.f, what+": Set error", err.Error())
		t.Errorf("%s: Set: %v", what, err)
		return
	}
	js, err := h.s.GetJSON(ctx, h.pool, key)
	got, gerr := h.s.Get(ctx, h.pool, key)
	h.f.operations.Add(3)
	switch {
	case err != nil || gerr != nil:
		t.Errorf("%s: GetJSON: %v; Get: %v", what, err, gerr)
		h.f.unread(t, 1, what)
	case string(js) != wantJSON:
		t.Errorf("%s: GetJSON differs from what was set (%d bytes, want %d)", what, len(js),
			len(wantJSON))
		h.f.lose(t, 1, what+": JSON text changed")
	case !reflect.DeepEqual(got, wantGet):
		t.Errorf("%s: Get returned another value (type %T, want %T)", what, got, wantGet)
		h.f.lose(t, 1, what+": value changed")
	}
}

// hvDecode decodes JSON text as Get does.
func hvDecode(t *testing.T, js string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("test JSON %.40q does not decode: %v", js, err)
	}
	return v
}

// Types whose JSON encoding goes through methods.

type hvBadJSON struct{}

func (hvBadJSON) MarshalJSON() ([]byte, error) { return []byte("\"s3cr3t\xff\""), nil }

type hvBadText struct{ n int }

func (hvBadText) MarshalText() ([]byte, error) { return []byte("s3cr3t\xfe"), nil }

// hvCleanStringBadText is a string kind whose own text is valid but whose
// MarshalText is not.
type hvCleanStringBadText string

func (hvCleanStringBadText) MarshalText() ([]byte, error) { return []byte("ok\xff"), nil }

type hvPtrText struct{ n int }

func (*hvPtrText) MarshalText() ([]byte, error) { return []byte("ptr\xff"), nil }

type hvInner struct{ Secret string }

type hvEmbeds struct {
	hvInner
	Other string
}

// TestHostileValuesInvalidUTF8 sets values with text that is not valid
// UTF-8 in strings, map keys, struct fields, json.RawMessage and the output
// of MarshalJSON and MarshalText, nested or not, through Set and SetMany.
// Each must be refused with nothing written; lookalikes that are valid
// (U+FFFD itself, its escape, bytes, unexported fields) must be stored.
func TestHostileValuesInvalidUTF8(t *testing.T) {
	t.Parallel()
	h := newHostileVals(t)
	bad := "s3cr3t-\xff-bad"
	refused := []struct {
		what  string
		value any
	}{
		{"string", bad},
		{"string of one bad byte", "\xff"},
		{"overlong NUL", "\xc0\x80"},
		{"encoded surrogate", "\xed\xa0\x80"},
		{"truncated rune", "abc\xe2\x82"},
		{"slice element", []string{"ok", bad}},
		{"array element", [2]string{bad, "ok"}},
		{"map key", map[string]string{bad: "v"}},
		{"map value", map[string]any{"k": bad}},
		{"nested map key", map[string]any{"k": []any{map[string]any{"\xe2\x82": 1}}}},
		{"struct field", struct{ Field string }{bad}},
		{"pointer field", struct{ P *string }{&bad}},
		{"string-option field", struct {
			S string `json:"s,string"`
		}{bad}},
		{"string-option pointer field", struct {
			S *string `json:",string"`
		}{&bad}},
		{"string-option field in a slice", []struct {
			S string `json:"s,string"`
		}{{"ok"}, {bad}}},
		{"embedded struct field", hvEmbeds{hvInner{bad}, "ok"}},
		{"map field key", struct{ M map[string]int }{map[string]int{bad: 1}}},
		{"interface in slice", []any{1, []any{2, any(bad)}}},
		{"RawMessage string", json.RawMessage("\"s3cr3t\xff\"")},
		{"RawMessage key", json.RawMessage("{\"\xff\":1}")},
		{"RawMessage in slice", []json.RawMessage{json.RawMessage("\"\xff\"")}},
		{"MarshalJSON output", hvBadJSON{}},
		{"MarshalText output", hvBadText{1}},
		{"MarshalText map key", map[hvBadText]int{{1}: 1}},
		{"MarshalText of a clean string kind", hvCleanStringBadText("ok")},
		{"MarshalText on a pointer, addressable field", &struct{ T hvPtrText }{}},
		{"MarshalText on a pointer", &hvPtrText{}},
	}
	for i, c := range refused {
		h.refused(c.what, fmt.Sprintf("utf8-%d", i), c.value)
	}

	// Valid values that look like the ones above.
	h.roundTrip("U+FFFD itself", "fffd", "s3cr3t-\ufffd", `"s3cr3t-`+"\ufffd"+`"`, "s3cr3t-\ufffd")
	h.roundTrip("RawMessage with the escape \\ufffd", "fffd-escape",
		json.RawMessage(`"\ufffd"`), `"\ufffd"`, "\ufffd")
	h.roundTrip("text \\ufffd, escaped", "fffd-text", `\ufffd`, `"\\ufffd"`, `\ufffd`)
	h.roundTrip("bytes", "bytes", []byte{0xff, 0xfe}, `"//4="`, "//4=")
	h.roundTrip("unexported field not encoded", "unexported",
		struct {
			A   string
			bad string
		}{"ok", bad}, `{"A":"ok"}`, map[string]any{"A": "ok"})
}

// hvNestArrays returns n nested arrays around 1, as Go values.
func hvNestArrays(n int) any {
	var v any = json.Number("1")
	for range n {
		v = []any{v}
	}
	return v
}

// hvNestObjects returns n nested objects {"a": ...} around 1.
func hvNestObjects(n int) any {
	var v any = json.Number("1")
	for range n {
		v = map[string]any{"a": v}
	}
	return v
}

func hvNestText(n int, open, close string) string {
	return strings.Repeat(open, n) + "1" + strings.Repeat(close, n)
}

// TestHostileValuesDepth sets values nested up to and past MaxValueDepth,
// as Go values and as JSON text, with brackets inside strings that must
// not count, and far deeper than any decoder accepts.
func TestHostileValuesDepth(t *testing.T) {
	t.Parallel()
	h := newHostileVals(t)
	limit := secrets.MaxValueDepth

	for _, n := range []int{1, limit - 1, limit} {
		js := hvNestText(n, "[", "]")
		h.roundTrip(fmt.Sprintf("arrays %d deep", n), fmt.Sprintf("arrays-%d", n), hvNestArrays(n),
			js, hvDecode(t, js))
		js = hvNestText(n, `{"a":`, "}")
		h.roundTrip(fmt.Sprintf("objects %d deep", n), fmt.Sprintf("objects-%d", n),
			hvNestObjects(n), js, hvDecode(t, js))
		js = hvNestText(n/2, `[{"a":`, "}]")
		h.roundTrip(fmt.Sprintf("arrays and objects %d deep", n/2*2), fmt.Sprintf("mixed-%d", n),
			json.RawMessage(js), js, hvDecode(t, js))
	}
	brackets := `["` + strings.Repeat("[{", 3000) + `\"` + strings.Repeat("[", 10) + `\\",` +
		hvNestText(limit-1, "[", "]") + "]"
	h.roundTrip("brackets inside strings", "brackets", json.RawMessage(brackets), brackets,
		hvDecode(t, brackets))

	for _, c := range []struct {
		what  string
		value any
	}{
		{"arrays one too deep", hvNestArrays(limit + 1)},
		{"objects one too deep", hvNestObjects(limit + 1)},
		{"RawMessage one too deep", json.RawMessage(hvNestText(limit+1, "[", "]"))},
		{"after an escaped backslash",
			json.RawMessage(`["\\",` + hvNestText(limit, "[", "]") + "]")},
		{"arrays 20000 deep", hvNestArrays(20000)},
		{"RawMessage 100000 deep", json.RawMessage(hvNestText(100000, "[", "]"))},
	} {
		err := h.refused(c.what, "deep-"+strings.ReplaceAll(c.what, " ", "-"), c.value)
		// Past 10000 levels encoding/json itself refuses JSON text, and
		// the error says only that the value cannot be encoded.
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("maximum of %d", limit)) &&
			!strings.Contains(c.what, "100000") {
			t.Errorf("%s: error %q does not state the maximum depth", c.what, err)
		}
		if err != nil && strings.Contains(c.what, "100000") {
			t.Logf("%s: %v", c.what, err)
		}
	}
}

// TestHostileValuesSize sets values whose JSON is exactly MaxValueSize
// bytes, one byte more, larger only before compaction, and larger only
// after escaping.
func TestHostileValuesSize(t *testing.T) {
	t.Parallel()
	h := newHostileVals(t)
	limit := secrets.MaxValueSize
	big := func(n int) string {
		return secretValue(("s3cr3t-big-" + strings.Repeat("x", n))[:n])
	}

	s := big(limit - 2)
	h.roundTrip("JSON of exactly MaxValueSize bytes", "exact", s, `"`+s+`"`, s)
	raw := "[" + strings.Repeat(" ", 2*limit) + "1 ]"
	h.roundTrip("RawMessage larger only before compaction", "spaces", json.RawMessage(raw), "[1]",
		[]any{json.Number("1")})
	ctl := strings.Repeat("\x01", (limit-2)/6)
	h.roundTrip("control characters escaped to just under the limit", "escaped", ctl,
		`"`+strings.Repeat(`\u0001`, (limit-2)/6)+`"`, ctl)

	for _, c := range []struct {
		what  string
		value any
		size  int
	}{
		{"JSON one byte over", big(limit - 1), limit + 1},
		{"JSON far over", big(3 * limit), 3*limit + 2},
		{"over only after escaping", ctl + "\x01", 6*((limit-2)/6+1) + 2},
		{"RawMessage one byte over", json.RawMessage(`"` + big(limit-1) + `"`), limit + 1},
	} {
		err := h.refused(c.what, "size-"+strings.ReplaceAll(c.what, " ", "-"), c.value)
		if err == nil {
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, fmt.Sprint(c.size)) || !strings.Contains(msg, fmt.Sprint(limit)) {
			t.Errorf("%s: error %q does not state the size (%d) and the limitimum (%d)",
				c.what, msg, c.size, limit)
		}
	}
}

// TestHostileValuesNumbers sets every JSON type and edge numbers, as JSON
// text, as json.Number and as Go numbers, and requires GetJSON to return
// the same text and Get the same json.Number text; numbers that are not
// JSON are refused.
func TestHostileValuesNumbers(t *testing.T) {
	t.Parallel()
	h := newHostileVals(t)
	numbers := []string{"0", "-0", "1e308", "1e-308", "1e400", "-1e400", "1e-400",
		"9007199254740991", "9007199254740992", "9007199254740993", "-9007199254740993",
		"9223372036854775807", "-9223372036854775808", "9223372036854775808",
		"18446744073709551615", "18446744073709551616", "12345678901234567890", "3.25",
		"1E+2", "1e+2", "1E2", "0.1", "-1", "1.0", "1.50", "0.30000000000000004", "5e-324",
		"123456789012345678901234567890.123456789e-5", "-0.0", "0e0", "1E-0"}
	for i, n := range numbers {
		num := json.Number(n)
		h.roundTrip("RawMessage "+n, fmt.Sprintf("raw-%d", i), json.RawMessage(n), n, num)
		h.roundTrip("json.Number "+n, fmt.Sprintf("num-%d", i), num, n, num)
		h.roundTrip("in an array "+n, fmt.Sprintf("arr-%d", i), []any{num}, "["+n+"]", []any{num})
		h.roundTrip("in an object "+n, fmt.Sprintf("obj-%d", i), map[string]any{"n": num},
			`{"n":`+n+`}`, map[string]any{"n": num})
	}

	goNumbers := []any{int64(math.MaxInt64), int64(math.MinInt64), uint64(math.MaxUint64),
		int64(1<<53 + 1), -int64(1<<53 + 1), 0.0, math.Copysign(0, -1), 1e308, 1e-308,
		5e-324, 0.1, 3.25, float32(0.1), float32(3.4e38), math.MaxFloat64,
		math.SmallestNonzeroFloat64}
	for i, v := range goNumbers {
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		h.roundTrip(fmt.Sprintf("Go %T %v", v, v), fmt.Sprintf("go-%d", i), v, string(js),
			json.Number(js))
	}

	for i, c := range []struct {
		what, js string
		want     any
	}{
		{"null", "null", nil}, {"true", "true", true}, {"false", "false", false},
		{"empty string", `""`, ""}, {"empty array", "[]", []any{}},
		{"empty object", "{}", map[string]any{}}, {"array of null", "[null]", []any{nil}},
		{"empty key", `{"":null}`, map[string]any{"": nil}},
		{"mixed", `{"a":[1,"b",true,null,{"c":[]}],"d":{}}`, hvDecode(t,
			`{"a":[1,"b",true,null,{"c":[]}],"d":{}}`)},
	} {
		h.roundTrip("JSON type "+c.what, fmt.Sprintf("type-%d", i), json.RawMessage(c.js), c.js,
			c.want)
	}
	h.roundTrip("Go nil", "go-nil", nil, "null", nil)

	for i, v := range []any{json.Number("01"), json.Number("1."), json.Number("+1"),
		json.Number("NaN"), json.Number("Infinity"), json.Number(".5"), json.Number("0x10"),
		json.Number("1e"), json.Number("-"), json.Number("1 2"), math.NaN(), math.Inf(1),
		math.Inf(-1), json.RawMessage("NaN"), json.RawMessage(""), json.RawMessage("01"),
		json.RawMessage("[1,]"), json.RawMessage(`{"a"}`), json.RawMessage("1 2")} {
		h.refused(fmt.Sprintf("not JSON: %T %.10v", v, v), fmt.Sprintf("badnum-%d", i), v)
	}
}

// TestHostileValuesEscapes sets strings holding every ASCII character,
// NUL, U+2028 and U+2029, HTML characters and astral runes, as Go strings
// and as JSON text with every escape, and requires them back exactly.
func TestHostileValuesEscapes(t *testing.T) {
	t.Parallel()
	h := newHostileVals(t)
	var all strings.Builder
	for r := range rune(0x80) {
		all.WriteRune(r)
	}
	all.WriteString("\u2028\u2029<>&\u0000\ufffd\ufeff😀é\u0301\U0010ffff")
	s := all.String()
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	// Set does not escape HTML, as json.Marshal does.
	js = bytes.NewBufferString(strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").
		Replace(string(js))).Bytes()
	h.roundTrip("every ASCII character and more", "all", s, string(js), s)
	h.roundTrip("NUL inside", "nul", "s3cr3t\x00nul", `"s3cr3t\u0000nul"`, "s3cr3t\x00nul")

	text := `"\"\\\/\b\f\n\r\t\u0000\u001f\u007f\u2028\u2029\ud83d\ude00\u00e9\u00E9<>&` +
		"\u2028 raw \u2029" + `"`
	var want string
	if err := json.Unmarshal([]byte(text), &want); err != nil {
		t.Fatal(err)
	}
	h.roundTrip("RawMessage with every escape", "escapes", json.RawMessage(text), text, want)
	keys := `{"\u0000":1,"\/":2,"\ud83d\ude00":3}`
	h.roundTrip("RawMessage object with escaped keys", "escaped-keys", json.RawMessage(keys), keys,
		map[string]any{"\x00": json.Number("1"), "/": json.Number("2"), "😀": json.Number("3")})
}

// hvRandom returns a random value of JSON types, depth at most d, with
// strings of hostile characters and numbers that float64 cannot hold.
func hvRandom(rng *rand.Rand, d int) any {
	pieces := []string{"a", `"`, "\\", "/", "\x00", "\n", "\u2028", "\u2029", "<", ">", "&", "é",
		"😀", "\ufffd", `\ufffd`, "\x7f", "\x1f", "\ufeff", "\u0301", "'", "%"}
	str := func() string {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	numbers := []string{"0", "-0", "1e400", "12345678901234567890", "3.25", "1E+2", "0.1",
		"9007199254740993", "-9223372036854775808", "5e-324"}
	switch k := rng.IntN(8); {
	case d > 0 && k == 0:
		a := make([]any, rng.IntN(4))
		for i := range a {
			a[i] = hvRandom(rng, d-1)
		}
		return a
	case d > 0 && k == 1:
		m := map[string]any{}
		for range rng.IntN(4) {
			m[str()] = hvRandom(rng, d-1)
		}
		return m
	case k == 2:
		return json.Number(numbers[rng.IntN(len(numbers))])
	case k == 3:
		return rng.IntN(2) == 0
	case k == 4:
		return nil
	}
	return str()
}

// TestHostileValuesRandom sets random values built from hostile strings
// and numbers, and requires each back exactly, as the JSON text that
// encoding/json writes (without HTML escapes) and as the value.
func TestHostileValuesRandom(t *testing.T) {
	t.Parallel()
	h := newHostileVals(t)
	rng := rand.New(rand.NewPCG(2028, 2029))
	for i := range scale(60, 50) {
		v := hvRandom(rng, 4)
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		js := strings.TrimSuffix(buf.String(), "\n")
		h.f.mutations.Add(1)
		h.roundTrip(fmt.Sprintf("random value %d", i), fmt.Sprintf("random-%d", i), v, js,
			hvDecode(t, js))
	}
}

// TestHostileValuesLoneSurrogates sets JSON text holding escapes of lone
// UTF-16 surrogates, which JSON's grammar allows but which stand for no
// character: Get can only hand them back as U+FFFD. The contract refuses
// text that is not valid UTF-8 rather than replace it, so these must be
// refused with ErrInvalidArgument and nothing written.
func TestHostileValuesLoneSurrogates(t *testing.T) {
	t.Parallel()
	h := newHostileVals(t)
	ctx := context.Background()
	for i, text := range []string{`"\ud800"`, `"\udc00"`, `"a\ud800b"`, `"\ud800\ud800"`,
		`"\ude00\ud83d"`, `"\uD800"`, `{"\ud800":1}`, `["\udfff"]`, `"\ud83d\u0041"`} {
		key := fmt.Sprintf("surrogate-%d", i)
		err := h.refused("lone surrogate "+text, key, json.RawMessage(text))
		if err == nil {
			got, gerr := h.s.Get(ctx, h.pool, key)
			js, _ := h.s.GetJSON(ctx, h.pool, key)
			t.Logf("lone surrogate %s was stored: GetJSON gives it back as %s, Get as %+q (%v)",
				text, js, got, gerr)
		}
	}
	// A pair, in either case, is a character and is stored.
	h.roundTrip("surrogate pair", "pair", json.RawMessage(`"\ud83d\ude00"`), `"\ud83d\ude00"`, "😀")
	h.roundTrip("surrogate pair in capitals", "pair-caps", json.RawMessage(`"\uD83D\uDE00"`),
		`"\uD83D\uDE00"`, "😀")
}
