package reliability_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// Kind "stored values": someone who can write the secrets table, but holds
// no master key, alters, swaps, cuts and extends stored values. Every such
// value must read as ErrIntegrity (ErrWrongKey, which also matches it, when
// the key id names no key of the ring), never as a value, and one
// identical message for every integrity failure.
//
// What the format cannot detect, by design (README, "Security model"):
//
//   - An older value of the same row put back. The tag binds a value to its
//     row's group, owner and key, not to a version or a time, so a value the
//     row held earlier (a revoked token, say) reads back as valid, even after
//     the row was deleted and created again. Only dropping the key that
//     sealed it, after rotation, makes it unreadable.
//   - Legacy (PHP original) values: they have no MAC and no scope, so while
//     the key that wrote them is in the ring, such a value reads in any row,
//     and its first block can be rewritten by flipping IV bits.
//
// TestStoredValueFormatLimits demonstrates both exactly, so the README's
// statements are tested.

// hostileKey returns the master key that label stands for in these tests,
// as "base64:" text, and its 32 bytes; both are registered with the leak
// watch.
func hostileKey(label string) (string, []byte) {
	sum := sha256.Sum256([]byte("sqlsecrets reliability master key: " + label))
	raw := sum[:]
	return secretKey("base64:"+base64.StdEncoding.EncodeToString(raw), raw), raw
}

// hostileRing returns a keyring of the keys that labels stand for; the
// first is the current key.
func hostileRing(t testing.TB, labels ...string) *secrets.Keyring {
	t.Helper()
	texts := make([]string, len(labels))
	for i, l := range labels {
		texts[i], _ = hostileKey(l)
	}
	r, err := secrets.NewKeyring(texts[0], texts[1:]...)
	if err != nil {
		t.Fatalf("NewKeyring of test keys %v failed", labels) // the error is not shown: keys
	}
	return r
}

// hostileStore returns the store of ring for the scope of n.
func hostileStore(ring *secrets.Keyring, n secrets.Name) secrets.Store {
	s := secrets.New(ring).Group(n.Group)
	if n.Owner != nil {
		return s.Owner(*n.Owner)
	}
	return s.NoOwner()
}

// hostileValue returns a distinctive secret text of exactly n bytes that
// starts with "s3cr3t-" and tag, registered with the leak watch.
func hostileValue(tag string, n int) string {
	const fill = "abcdefghijklmnopqrstuvwxyz0123456789"
	s := "s3cr3t-" + tag + "-"
	for len(s) < n {
		s += fill
	}
	return secretValue(s[:n])
}

func hostileOwner(v int64) *int64 { return &v }

// hostileNameID identifies a secret in maps; unlike Name.String it is exact.
func hostileNameID(n secrets.Name) string {
	if n.Owner == nil {
		return fmt.Sprintf("%q|-|%q", n.Group, n.Key)
	}
	return fmt.Sprintf("%q|%d|%q", n.Group, *n.Owner, n.Key)
}

// tamperSizes are the lengths, in bytes of JSON, of the values attacked:
// an empty string, a block less one byte, a block, a block and one byte,
// and two larger values.
var tamperSizes = []int{2, 15, 16, 17, 200, 4096}

// Labels of the keys: the ring holds tamperK2 (current), tamperK1, which
// sealed the values, and tamperK0; tamperK3 is outside it.
const (
	tamperK0 = "stored-k0"
	tamperK1 = "stored-k1"
	tamperK2 = "stored-k2"
	tamperK3 = "stored-k3-not-in-ring"
)

// tamperRow is one row as first written.
type tamperRow struct {
	id    int64
	name  secrets.Name
	value string // the plaintext string
	text  string // the stored envelope
}

// tamperCase is one altered value written into one row.
type tamperCase struct {
	what string // what was done, for messages and the tally of classes
	row  *tamperRow
	text string
	// legacyReads makes the reads use a keyring that opens the PHP
	// original's format.
	legacyReads bool
}

// tamperClass is the error a case calls for. Each matches ErrIntegrity.
type tamperClass string

const (
	classIntegrity tamperClass = "ErrIntegrity alone"
	classWrongKey  tamperClass = "ErrWrongKey"
	classLegacy    tamperClass = "ErrLegacyFormat"
)

// tamperMessages collects the distinct error messages of every class, so
// that the test can require one message for every integrity failure.
type tamperMessages struct {
	mu   sync.Mutex
	msgs map[tamperClass]map[string]string // class -> message -> first case
	by   map[tamperClass]map[string]int    // class -> kind of case -> cases
}

func (m *tamperMessages) add(class tamperClass, msg, what string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.msgs[class] == nil {
		m.msgs[class], m.by[class] = map[string]string{}, map[string]int{}
	}
	m.by[class][strings.Fields(what)[0]]++
	if _, ok := m.msgs[class][msg]; !ok {
		m.msgs[class][msg] = what
	}
}

// tamperRun is the state of the attack on one value size.
type tamperRun struct {
	t    *testing.T
	f    *figures
	pool *pgxpool.Pool
	ring *secrets.Keyring // tamperK2, tamperK1, tamperK0
	kids map[[8]byte]bool // key ids of the ring
	fps  map[string]bool  // legacy fingerprints of the ring
	msgs *tamperMessages

	slots []*tamperRow // rows of one scope that take the generated mutations
	cross map[string]*tamperRow
	all   []*tamperRow
	dirty map[*tamperRow]bool // rows that hold an altered value
}

// TestStoredValuesTampered writes altered envelopes into rows, for values of
// several sizes, and reads them through Store.Get, rotation.Verify and
// rotation.Rotate: every byte position changed, bits flipped in each field
// of the decoded envelope, cuts and extensions in text and in bytes, text
// that is not base64, the empty string, legacy-looking values, and values
// of other rows, owners (owner 0 and no owner included), groups, keys and
// master keys. Then it checks that every other row is intact.
func TestStoredValuesTampered(t *testing.T) {
	t.Parallel()
	f := kind("stored values")
	msgs := &tamperMessages{msgs: map[tamperClass]map[string]string{},
		by: map[tamperClass]map[string]int{}}
	t.Run("sizes", func(t *testing.T) {
		for _, size := range tamperSizes {
			// Altered values and moved values each get a table of their
			// own, so that Verify and Rotate after every moved value
			// read a few rows, not every slot.
			t.Run(fmt.Sprintf("json_%d_bytes/altered", size), func(t *testing.T) {
				t.Parallel()
				r := newTamperRun(t, f, msgs, size, scale(400, 2))
				r.alter(size)
				r.checkIntact()
			})
			t.Run(fmt.Sprintf("json_%d_bytes/moved", size), func(t *testing.T) {
				t.Parallel()
				r := newTamperRun(t, f, msgs, size, 1)
				for _, c := range r.crossCases(rand.New(rand.NewPCG(uint64(size), 2))) {
					r.attack([]tamperCase{c}, true)
				}
				r.checkIntact()
			})
		}
	})

	msgs.mu.Lock()
	defer msgs.mu.Unlock()
	for _, class := range []tamperClass{classIntegrity, classWrongKey, classLegacy} {
		if len(msgs.msgs[class]) != 1 {
			for msg, what := range msgs.msgs[class] {
				t.Errorf("%s: message %q (first from %s)", class, msg, what)
			}
			t.Errorf("%s: %d distinct messages; want exactly one", class, len(msgs.msgs[class]))
		}
		t.Logf("%s: errors seen in Get, Verify and Rotate, by kind of case: %v",
			class, msgs.by[class])
	}
}

// newTamperRun returns a run on a table of its own, with slots rows that
// take the generated alterations, rows to move values between, and
// neighbours, all holding values of size bytes of JSON.
func newTamperRun(t *testing.T, f *figures, msgs *tamperMessages, size, slots int) *tamperRun {
	_, pool := pgtest.Migrated(t)
	r := &tamperRun{
		t: t, f: f, pool: pool, msgs: msgs,
		ring: hostileRing(t, tamperK2, tamperK1, tamperK0),
		kids: map[[8]byte]bool{}, fps: map[string]bool{}, cross: map[string]*tamperRow{},
		dirty: map[*tamperRow]bool{},
	}
	for _, l := range []string{tamperK2, tamperK1, tamperK0} {
		r.kids[tamperKID(l)] = true
		r.fps[tamperFingerprint(l)] = true
	}
	r.seed(size, slots)
	return r
}

// alter writes every generated alteration of the slots' values, as many
// at a time as there are slots.
func (r *tamperRun) alter(size int) {
	rng := rand.New(rand.NewPCG(uint64(size), 1))
	ops := tamperOps(r.slots[0].text, rng)
	for batchNo, start := 0, 0; start < len(ops); batchNo, start = batchNo+1, start+len(r.slots) {
		batch := ops[start:min(start+len(r.slots), len(ops))]
		cases := make([]tamperCase, 0, len(batch))
		for i, op := range batch {
			row := r.slots[i]
			text := op.apply(row.text)
			if text == row.text {
				continue // the operation left this row's text as it was
			}
			cases = append(cases, tamperCase{what: op.what, row: row, text: text})
		}
		// Verify and Rotate read the whole table; over large values a
		// normal run has them look at every fifth batch only.
		r.attack(cases, *soak || size <= 256 || batchNo%5 == 0)
	}
}

// seed writes the rows: slots that take the generated mutations, rows of
// other scopes whose values are swapped around, and neighbours that are
// never touched.
func (r *tamperRun) seed(size, slotCount int) {
	t := r.t
	slotValue := hostileValue("slot", size-2)
	var entries []secrets.Entry
	add := func(n secrets.Name, v string) {
		entries = append(entries, secrets.Entry{Name: n, Value: v})
	}
	for i := range slotCount {
		add(secrets.Name{Group: "stored", Owner: hostileOwner(7), Key: fmt.Sprintf("slot-%03d", i)},
			slotValue)
	}
	for label, n := range tamperCrossNames() {
		add(n, hostileValue(label, size-2))
	}
	for i, owner := range []*int64{nil, hostileOwner(0), hostileOwner(7), hostileOwner(1 << 62)} {
		add(secrets.Name{Group: "stored", Owner: owner, Key: "neighbour"},
			hostileValue(fmt.Sprintf("nb%d", i), size-2))
		add(secrets.Name{Group: "neighbours", Owner: owner, Key: "slot-000"},
			hostileValue(fmt.Sprintf("nc%d", i), size-2))
	}
	ctx := context.Background()
	if err := secrets.SetMany(ctx, r.pool, hostileRing(t, tamperK1), entries); err != nil {
		t.Fatalf("SetMany: %v", err)
	}
	r.f.operations.Add(1)

	byID := map[string]*tamperRow{}
	for _, e := range entries {
		row := &tamperRow{name: e.Name, value: e.Value.(string)}
		byID[hostileNameID(e.Name)] = row
		r.all = append(r.all, row)
	}
	rows, err := r.pool.Query(ctx, `SELECT id, key, "group", owner_id, value FROM secrets`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n secrets.Name
		var id int64
		var text string
		if err := rows.Scan(&id, &n.Key, &n.Group, &n.Owner, &text); err != nil {
			t.Fatal(err)
		}
		row := byID[hostileNameID(n)]
		if row == nil {
			t.Fatalf("row %d %s was not written by the test", id, n)
		}
		row.id, row.text = id, text
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for i := range slotCount {
		r.slots = append(r.slots, byID[hostileNameID(entries[i].Name)])
	}
	for label, n := range tamperCrossNames() {
		r.cross[label] = byID[hostileNameID(n)]
	}
}

// tamperCrossNames are the rows whose values are moved into each other.
func tamperCrossNames() map[string]secrets.Name {
	return map[string]secrets.Name{
		"app7":      {Group: "app", Owner: hostileOwner(7), Key: "token"},
		"app7other": {Group: "app", Owner: hostileOwner(7), Key: "other"},
		"billing7":  {Group: "billing", Owner: hostileOwner(7), Key: "token"},
		"app8":      {Group: "app", Owner: hostileOwner(8), Key: "token"},
		"app0":      {Group: "app", Owner: hostileOwner(0), Key: "token"},
		"appNone":   {Group: "app", Key: "token"},
		"slashNone": {Group: "a/1", Key: "token"}, // prints like a/1
		"a1":        {Group: "a", Owner: hostileOwner(1), Key: "token"},
		"abC":       {Group: "ab", Owner: hostileOwner(7), Key: "c"},
		"aBC":       {Group: "a", Owner: hostileOwner(7), Key: "bc"},
	}
}

// crossCases are values of other rows, and of other master keys, written
// into a row.
func (r *tamperRun) crossCases(rng *rand.Rand) []tamperCase {
	c := r.cross
	move := func(from, to string) tamperCase {
		return tamperCase{what: "moved " + from + " into " + to, row: c[to], text: c[from].text}
	}
	cases := []tamperCase{
		move("app7other", "app7"), move("billing7", "app7"), move("app8", "app7"),
		move("app0", "app7"), move("app7", "app0"), move("appNone", "app0"),
		move("app0", "appNone"), move("app7", "appNone"), move("slashNone", "a1"),
		move("a1", "slashNone"), move("abC", "aBC"), move("aBC", "abC"),
		{what: "moved slot into app7", row: c["app7"], text: r.slots[0].text},
		{what: "moved app7 into slot", row: r.slots[0], text: c["app7"].text},
	}
	sealWith := func(label string, n secrets.Name, value string) string {
		pt, err := json.Marshal(value)
		if err != nil {
			r.t.Fatal(err)
		}
		text, err := hostileRing(r.t, label).Seal(n, pt)
		if err != nil {
			r.t.Fatalf("Seal: %v", err)
		}
		return text
	}
	app7, other := c["app7"], c["app7other"]
	into := func(what, text string) {
		cases = append(cases, tamperCase{what: what, row: app7, text: text})
	}
	into("moved app7other sealed with a previous key of the ring into app7",
		sealWith(tamperK0, other.name, other.value))
	into("moved app7other sealed with the current key of the ring into app7",
		sealWith(tamperK2, other.name, other.value))
	into("sealed app7 itself with a key outside the ring",
		sealWith(tamperK3, app7.name, app7.value))
	into("moved app7other sealed with a key outside the ring into app7",
		sealWith(tamperK3, other.name, other.value))
	into("sealed app7 itself with a key outside the ring, kid of the ring",
		tamperWithKID(r.t, sealWith(tamperK3, app7.name, app7.value), tamperKID(tamperK1)))
	into("sealed app7 with a previous key of the ring, kid of another",
		tamperWithKID(r.t, sealWith(tamperK0, app7.name, app7.value), tamperKID(tamperK1)))
	for _, l := range r.legacyTexts(rng, app7.value) {
		cases = append(cases,
			tamperCase{what: "legacy " + l.what, row: app7, text: l.text},
			tamperCase{what: "legacy " + l.what + ", legacy reads on", row: app7, text: l.text,
				legacyReads: true})
	}
	return cases
}

// attack writes every case into its row, and the original value back into
// rows that an earlier batch altered, in one statement; reads each case
// through Store.Get; and, when heavy, runs Verify and Rotate over the table
// and checks that they left the altered rows as they were.
func (r *tamperRun) attack(cases []tamperCase, heavy bool) {
	t := r.t
	t.Helper()
	if len(cases) == 0 {
		return
	}
	r.f.cases.Add(int64(len(cases)))
	r.f.mutations.Add(int64(len(cases)))
	want := map[int64]*tamperCase{}
	var ids []int64
	var texts []string
	for i := range cases {
		ids, texts = append(ids, cases[i].row.id), append(texts, cases[i].text)
		want[cases[i].row.id] = &cases[i]
	}
	for row := range r.dirty {
		if want[row.id] == nil {
			ids, texts = append(ids, row.id), append(texts, row.text)
			delete(r.dirty, row)
		}
	}
	r.write(ids, texts)
	for i := range cases {
		r.dirty[cases[i].row] = true
	}

	r.getAll(cases)
	if !heavy {
		return
	}
	r.verifyAll(want, cases[0].legacyReads)
	r.rotateAll(want, cases[0].legacyReads)

	var now []string
	if err := r.pool.QueryRow(context.Background(),
		`SELECT array_agg(value ORDER BY ord) FROM secrets
		 JOIN unnest($1::bigint[]) WITH ORDINALITY AS u(id, ord) USING (id)`, ids[:len(cases)],
	).Scan(&now); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(now, texts[:len(cases)]) {
		t.Errorf("Rotate or Verify changed rows that do not open (%s ...)", cases[0].what)
	}
}

// write sets the value of each row in ids, in one statement.
func (r *tamperRun) write(ids []int64, texts []string) {
	tag, err := r.pool.Exec(context.Background(),
		`UPDATE secrets AS s SET value = u.v FROM unnest($1::bigint[], $2::text[]) AS u(id, v)
		 WHERE s.id = u.id`, ids, texts)
	if err != nil || tag.RowsAffected() != int64(len(ids)) {
		r.t.Fatalf("UPDATE of %d rows: %d updated, %v", len(ids), tag.RowsAffected(), err)
	}
}

// tamperGot is what one Get returned.
type tamperGot struct {
	value    any
	err      error
	panicked any
}

func tamperGet(ctx context.Context, s secrets.Store, db secrets.DBTX, key string) (g tamperGot) {
	defer func() { g.panicked = recover() }()
	g.value, g.err = s.Get(ctx, db, key)
	return g
}

// getAll reads every case through Store.Get, a few at a time, and checks
// each error.
func (r *tamperRun) getAll(cases []tamperCase) {
	got := make([]tamperGot, len(cases))
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				n := cases[i].row.name
				s := hostileStore(r.ringFor(cases[i].legacyReads), n)
				got[i] = tamperGet(context.Background(), s, r.pool, n.Key)
			}
		})
	}
	for i := range cases {
		next <- i
	}
	close(next)
	wg.Wait()
	r.f.operations.Add(int64(len(cases)))

	for i, c := range cases {
		g := got[i]
		switch {
		case g.panicked != nil:
			r.t.Errorf("%s: Get panicked", c.what)
			continue
		case g.err == nil:
			r.t.Errorf("%s: Get returned a value (of type %T), want ErrIntegrity", c.what, g.value)
			continue
		}
		msg := g.err.Error()
		checkLeaks(r.t, r.f, c.what+": Get error", msg)
		prefix := "get " + c.row.name.String() + ": "
		rest, ok := strings.CutPrefix(msg, prefix)
		if !ok {
			r.t.Errorf("%s: Get error %q does not start with %q", c.what, msg, prefix)
		}
		r.checkErr(&cases[i], "Get", g.err, rest)
	}
}

// checkErr checks that err, which msg describes without its prefix, is the
// error that the text of c calls for, and records msg.
func (r *tamperRun) checkErr(c *tamperCase, op string, err error, msg string) {
	want := r.expect(c.text, c.legacyReads)
	got := classIntegrity
	switch {
	case errors.Is(err, secrets.ErrWrongKey):
		got = classWrongKey
	case errors.Is(err, secrets.ErrLegacyFormat):
		got = classLegacy
	}
	switch {
	case !errors.Is(err, secrets.ErrIntegrity):
		r.t.Errorf("%s: %s error %q does not match ErrIntegrity", c.what, op, err)
	case got != want:
		r.t.Errorf("%s: %s gave %q, which is %s; want %s", c.what, op, err, got, want)
	default:
		r.msgs.add(got, msg, c.what)
	}
}

// expect returns the error that text calls for. A text that parses as an
// envelope, v1 or legacy, whose key id or fingerprint names no key of the
// ring calls for ErrWrongKey; a legacy one, without legacy reads, for
// ErrLegacyFormat; every other for ErrIntegrity alone.
func (r *tamperRun) expect(text string, legacyReads bool) tamperClass {
	if body, ok := strings.CutPrefix(text, "v1."); ok {
		if strings.ContainsAny(body, "\r\n") {
			return classIntegrity
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(body)
		ct := len(raw) - 56
		if err != nil || ct < 16 || ct%16 != 0 || r.kids[[8]byte(raw[:8])] {
			return classIntegrity
		}
		return classWrongKey
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil || len(raw) < 80 {
		return classIntegrity
	}
	ct, err := base64.StdEncoding.Strict().DecodeString(string(raw[80:]))
	switch {
	case err != nil || len(ct) == 0 || len(ct)%16 != 0:
		return classIntegrity
	case !legacyReads:
		return classLegacy
	case r.fps[string(raw[:64])]:
		return classIntegrity
	}
	return classWrongKey
}

// ringFor returns the ring, with legacy reads on if asked.
func (r *tamperRun) ringFor(legacyReads bool) *secrets.Keyring {
	if legacyReads {
		return r.ring.WithLegacyReads()
	}
	return r.ring
}

// verifyAll runs Verify over the table: exactly the cases are unreadable.
func (r *tamperRun) verifyAll(want map[int64]*tamperCase, legacyReads bool) {
	rep, err := tamperVerify(r.pool, r.ringFor(legacyReads))
	r.f.operations.Add(1)
	checkLeaks(r.t, r.f, "Verify report", formatted(rep))
	if err != nil {
		r.t.Fatalf("Verify: %v", err)
	}
	if rep.Unreadable != int64(len(want)) || rep.Total != int64(len(r.all)) {
		r.t.Errorf("Verify: %d of %d rows unreadable; want %d of %d",
			rep.Unreadable, rep.Total, len(want), len(r.all))
	}
	r.checkFailures("Verify", rep.Failures, want)
}

// rotateAll runs Rotate over the table: exactly the cases fail, the other
// rows are rotated or skipped.
func (r *tamperRun) rotateAll(want map[int64]*tamperCase, legacyReads bool) {
	res, err := tamperRotate(r.pool, r.ringFor(legacyReads))
	r.f.operations.Add(1)
	checkLeaks(r.t, r.f, "Rotate result", formatted(res))
	if err != nil {
		r.t.Fatalf("Rotate: %v", err)
	}
	if res.Failed != int64(len(want)) || res.Rotated+res.Skipped+res.Failed != int64(len(r.all)) {
		r.t.Errorf("Rotate: %d rotated, %d skipped, %d failed; want %d failed of %d",
			res.Rotated, res.Skipped, res.Failed, len(want), len(r.all))
	}
	r.checkFailures("Rotate", res.Failures, want)
}

func tamperVerify(db secrets.DBTX, ring *secrets.Keyring) (rep rotation.Report, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("Verify panicked")
		}
	}()
	return rotation.Verify(context.Background(), db, ring, rotation.Options{BatchSize: 300})
}

func tamperRotate(db secrets.DBTX, ring *secrets.Keyring) (res rotation.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("Rotate panicked")
		}
	}()
	return rotation.Rotate(context.Background(), db, ring, rotation.Options{BatchSize: 300})
}

func (r *tamperRun) checkFailures(op string, fails []rotation.Failure, want map[int64]*tamperCase) {
	seen := map[int64]bool{}
	for _, fl := range fails {
		c := want[fl.ID]
		if c == nil {
			r.t.Errorf("%s reports row %d (%s) as failed; it holds its own value",
				op, fl.ID, fl.Name)
			continue
		}
		seen[fl.ID] = true
		if diff := cmp.Diff(c.row.name, fl.Name); diff != "" {
			r.t.Errorf("%s: %s: failure names another row (-want +got):\n%s", op, c.what, diff)
		}
		if fl.Err == nil {
			r.t.Errorf("%s: %s: failure without an error", op, c.what)
			continue
		}
		checkLeaks(r.t, r.f, op+" failure", fl.Err.Error())
		r.checkErr(c, op, fl.Err, fl.Err.Error())
	}
	for id, c := range want {
		if !seen[id] {
			r.t.Errorf("%s: %s: not reported as failed", op, c.what)
		}
	}
}

// checkIntact rotates the whole table once more, then reads every row with
// its original value and requires it, and a Verify with the current key
// alone.
func (r *tamperRun) checkIntact() {
	t := r.t
	ctx := context.Background()
	var ids []int64
	var texts []string
	for row := range r.dirty {
		ids, texts = append(ids, row.id), append(texts, row.text)
	}
	r.write(ids, texts)
	if _, err := tamperRotate(r.pool, r.ring); err != nil {
		t.Fatalf("final Rotate: %v", err)
	}
	r.f.operations.Add(1)
	var lost, unread int64
	for _, row := range r.all {
		got, err := hostileStore(r.ring, row.name).Get(ctx, r.pool, row.name.Key)
		r.f.operations.Add(1)
		switch {
		case errors.Is(err, secrets.ErrNotFound):
			lost++
		case err != nil:
			unread++
		case got != row.value:
			lost++
		}
	}
	if lost > 0 {
		r.f.lose(t, lost, "after the attacks, rows are missing or hold another value")
	}
	if unread > 0 {
		r.f.unread(t, unread, "after the attacks, restored rows do not open")
	}
	rep, err := tamperVerify(r.pool, hostileRing(t, tamperK2))
	r.f.operations.Add(1)
	if err != nil || rep.Current != int64(len(r.all)) || rep.Total != int64(len(r.all)) {
		t.Errorf("Verify with the new key alone: %+v, %v; want all %d current",
			rep.Current, err, len(r.all))
	}
}

// tamperKID returns the key id of the key that label stands for.
func tamperKID(label string) [8]byte {
	_, raw := hostileKey(label)
	kid, err := hkdf.Key(sha256.New, raw, nil, "sqlsecrets/v1/kid", 8)
	if err != nil {
		panic(err)
	}
	return [8]byte(kid)
}

// tamperFingerprint returns the legacy fingerprint of the key that label
// stands for: the hex SHA-256 of the master key.
func tamperFingerprint(label string) string {
	_, raw := hostileKey(label)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

func tamperDecode(text string) []byte {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(strings.TrimPrefix(text, "v1."))
	if err != nil {
		panic("stored value of the test is not v1")
	}
	return raw
}

func tamperEncode(raw []byte) string { return "v1." + base64.RawURLEncoding.EncodeToString(raw) }

// tamperWithKID returns text with its key id replaced.
func tamperWithKID(t testing.TB, text string, kid [8]byte) string {
	raw := tamperDecode(text)
	copy(raw, kid[:])
	return tamperEncode(raw)
}

// tamperOp alters a stored v1 text.
type tamperOp struct {
	what  string
	apply func(text string) string
}

const tamperAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// tamperOps returns the alterations of texts shaped like sample (the same
// length): every position changed, bit flips in every field, cuts and
// extensions, and text that is no envelope.
func tamperOps(sample string, rng *rand.Rand) []tamperOp {
	var ops []tamperOp
	text := func(what string, fn func(string) string) {
		ops = append(ops, tamperOp{what, fn})
	}
	bytesOp := func(what string, fn func([]byte) []byte) {
		ops = append(ops, tamperOp{what, func(s string) string {
			return tamperEncode(fn(tamperDecode(s)))
		}})
	}
	fixed := func(what, v string) { text(what, func(string) string { return v }) }

	// Every position, to other base64url characters and to characters
	// outside the alphabet. A soak tries them all; a normal run tries one
	// of each at every position, and on long values, one of either.
	shifts := []int{1, 32, 2, 16, 63}
	others := []string{"=", "+", "/", " ", ".", "\n", "\r", "\t", "~", "%", `"`, `\`, "é", "\u2028"}
	long := len(sample) > 1000
	for pos := range len(sample) {
		for j, k := range shifts {
			if !*soak && (j != pos%len(shifts) || long && pos%2 == 1) {
				continue
			}
			text(fmt.Sprintf("char %d shifted by %d", pos, k), func(s string) string {
				idx := strings.IndexByte(tamperAlphabet, s[pos])
				if idx < 0 {
					idx = int(s[pos])
				}
				return s[:pos] + string(tamperAlphabet[(idx+k)%64]) + s[pos+1:]
			})
		}
		for j, o := range others {
			if !*soak && (j != pos%len(others) || long && pos%2 == 0) {
				continue
			}
			text(fmt.Sprintf("char %d to non-base64 %q", pos, o), func(s string) string {
				return s[:pos] + o + s[pos+1:]
			})
		}
	}

	// Bit flips in every byte of every field of the decoded envelope.
	n := len(tamperDecode(sample))
	for i := range n {
		field, at := "kid", i
		switch {
		case i >= n-32:
			field, at = "tag", i-(n-32)
		case i >= 24:
			field, at = "ciphertext", i-24
		case i >= 8:
			field, at = "iv", i-8
		}
		for bit := range 8 {
			// A normal run flips one bit of each ciphertext byte, and of
			// long ciphertexts, only in the first and last two blocks
			// and one byte in 13 between them.
			sampled := n > 600 && at >= 32 && i < n-64 && at%13 != 0
			if field == "ciphertext" && !*soak && (bit != i%8 || sampled) {
				continue
			}
			what := fmt.Sprintf("bitflip %s byte %d bit %d", field, at, bit)
			bytesOp(what, func(b []byte) []byte {
				b[i] ^= 1 << bit
				return b
			})
		}
	}
	for _, l := range []string{tamperK0, tamperK2, tamperK3} {
		bytesOp("kid replaced by that of "+l, func(b []byte) []byte {
			kid := tamperKID(l)
			copy(b, kid[:])
			return b
		})
	}
	bytesOp("kid zeroed", func(b []byte) []byte { clear(b[:8]); return b })

	// Cuts and extensions, in text.
	for _, k := range []int{1, 2, 3, 4, 5, 21, 22, 43, 44, len(sample) / 2, len(sample) - 3} {
		text(fmt.Sprintf("truncate text by %d chars", k), func(s string) string {
			return s[:len(s)-k]
		})
	}
	for _, ext := range []string{"A", "AA", "AAA", "AAAA", "Q", "w", strings.Repeat("A", 100),
		"=", "==", ".", "\n", "\r\n", " ", "\t", "v1."} {
		text(fmt.Sprintf("extend text by %q", ext), func(s string) string { return s + ext })
	}
	text("extend text by itself", func(s string) string { return s + s[3:] })
	for _, pre := range []string{" ", "\n", "v1.", "V", "\ufeff"} {
		text(fmt.Sprintf("prefix text with %q", pre), func(s string) string { return pre + s })
	}
	for _, in := range []string{"\n", "\r\n", "\r", " ", "=", "."} {
		text(fmt.Sprintf("insert %q in the middle", in), func(s string) string {
			return s[:len(s)/2] + in + s[len(s)/2:]
		})
		text(fmt.Sprintf("insert %q after the prefix", in), func(s string) string {
			return s[:3] + in + s[3:]
		})
	}
	for _, p := range []string{"V1.", "v2.", "v0.", "v1:", "v1..", "", "v1.v1.", "v10."} {
		text(fmt.Sprintf("prefix %q instead of v1.", p), func(s string) string { return p + s[3:] })
	}
	text("standard base64 alphabet, padded", func(s string) string {
		return "v1." + base64.StdEncoding.EncodeToString(tamperDecode(s))
	})
	text("standard base64 alphabet, unpadded", func(s string) string {
		return "v1." + base64.RawStdEncoding.EncodeToString(tamperDecode(s))
	})
	text("url alphabet, padded", func(s string) string {
		return "v1." + base64.URLEncoding.EncodeToString(tamperDecode(s))
	})
	text("last char with unused bits set", func(s string) string {
		idx := strings.IndexByte(tamperAlphabet, s[len(s)-1])
		return s[:len(s)-1] + string(tamperAlphabet[idx|1])
	})

	// Cuts and extensions, in bytes.
	for _, k := range []int{1, 8, 15, 16, 17, 31, 32, 33, 48} {
		bytesOp(fmt.Sprintf("truncate bytes by %d at the end", k), func(b []byte) []byte {
			return b[:max(len(b)-k, 0)]
		})
		bytesOp(fmt.Sprintf("truncate bytes by %d at the start", k), func(b []byte) []byte {
			return b[min(k, len(b)):]
		})
	}
	for _, k := range []int{0, 8, 24, 55, 56, 57, 72} {
		bytesOp(fmt.Sprintf("keep the first %d bytes", k), func(b []byte) []byte {
			return b[:min(k, len(b))]
		})
	}
	for _, k := range []int{1, 15, 16, 17, 32, 64} {
		bytesOp(fmt.Sprintf("extend bytes by %d zeros", k), func(b []byte) []byte {
			return append(b, make([]byte, k)...)
		})
		extra := make([]byte, k)
		for i := range extra {
			extra[i] = byte(rng.IntN(256))
		}
		bytesOp(fmt.Sprintf("extend bytes by %d random", k), func(b []byte) []byte {
			return append(b, extra...)
		})
		bytesOp(fmt.Sprintf("insert %d zeros before the tag", k), func(b []byte) []byte {
			return slices.Insert(b, len(b)-32, make([]byte, k)...)
		})
	}
	bytesOp("tag repeated", func(b []byte) []byte { return append(b, b[len(b)-32:]...) })
	bytesOp("tag zeroed", func(b []byte) []byte { clear(b[len(b)-32:]); return b })
	bytesOp("tag truncated to 16, block added", func(b []byte) []byte {
		return append(b[:len(b)-16], make([]byte, 16)...)
	})
	bytesOp("first ciphertext block dropped", func(b []byte) []byte {
		return slices.Delete(b, 24, 40)
	})
	bytesOp("last ciphertext block dropped", func(b []byte) []byte {
		return slices.Delete(b, len(b)-48, len(b)-32)
	})
	bytesOp("first ciphertext block as IV", func(b []byte) []byte {
		return slices.Delete(b, 8, 24) // the IV goes, block 1 becomes the IV
	})
	bytesOp("ciphertext blocks swapped or doubled", func(b []byte) []byte {
		if len(b) >= 56+32 {
			blk := slices.Clone(b[24:40])
			copy(b[24:40], b[40:56])
			copy(b[40:56], blk)
			return b
		}
		return slices.Insert(b, 24, b[24:40]...)
	})
	bytesOp("iv and ciphertext zeroed", func(b []byte) []byte { clear(b[8 : len(b)-32]); return b })

	// Values that are no envelope at all.
	for _, v := range []string{"", "v1.", "v1", "v", "null", `"s3cr3t plaintext in the column"`,
		`{"token":"s3cr3t-plain"}`, "not base64 at all!", "v1.!!!!",
		"v1." + strings.Repeat("*", 120),
		"v1.é", "AAAA", strings.Repeat("A", 200), "\u2028", " ", "\n", "0"} {
		fixed(fmt.Sprintf("value %.20q", v), v)
	}
	return ops
}

// tamperText is a stored text made for a case.
type tamperText struct{ what, text string }

// legacyTexts returns legacy-looking values: base64 of a 64-hex
// fingerprint, 16 IV bytes and base64 ciphertext, with fingerprints of
// keys in and outside the ring, and bodies that do not decrypt to JSON.
func (r *tamperRun) legacyTexts(rng *rand.Rand, value string) []tamperText {
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	build := func(fp string, iv, ct []byte) string {
		inner := base64.StdEncoding.EncodeToString(ct)
		return base64.StdEncoding.EncodeToString(append(append([]byte(fp), iv...), inner...))
	}
	in := tamperFingerprint(tamperK1)
	out := []tamperText{
		{"ring fingerprint, random 16-byte body", build(in, random(16), random(16))},
		{"ring fingerprint, random 32-byte body", build(in, random(16), random(32))},
		{"ring fingerprint, random 4096-byte body", build(in, random(16), random(4096))},
		{"ring fingerprint, 15-byte body", build(in, random(16), random(15))},
		{"ring fingerprint, empty body", build(in, random(16), nil)},
		{"ring fingerprint, no body, short IV",
			base64.StdEncoding.EncodeToString([]byte(in + "0123"))},
		{"ring fingerprint, body not base64", base64.StdEncoding.EncodeToString(
			append(append([]byte(in), random(16)...), "!!!!not base64"...))},
		{"ring fingerprint in capitals", build(strings.ToUpper(in), random(16), random(16))},
		{"fingerprint of a key outside the ring", build(tamperFingerprint(tamperK3), random(16),
			random(32))},
		{"random fingerprint", build(hex.EncodeToString(random(32)), random(16), random(16))},
		{"ring fingerprint, unpadded", strings.TrimRight(build(in, random(16), random(16)), "=")},
		{"ring fingerprint, url alphabet", strings.NewReplacer("+", "-", "/", "_").Replace(
			build(in, random(16), random(16)))},
	}
	// Well-formed legacy values sealed with a ring key, whose plaintext is
	// not JSON, and one sealed with a key outside the ring.
	for _, pt := range []string{"s3cr3t not json", "", "{", `"` + value} {
		out = append(out, tamperText{fmt.Sprintf("sealed with a ring key, plaintext %.8q", pt),
			tamperLegacySeal(tamperK1, random(16), []byte(pt))})
	}
	pt, _ := json.Marshal(value)
	out = append(out, tamperText{"sealed with a key outside the ring",
		tamperLegacySeal(tamperK3, random(16), pt)})
	return out
}

// tamperLegacySeal writes plaintext as the PHP original did, with the key that
// label stands for.
func tamperLegacySeal(label string, iv, plaintext []byte) string {
	_, key := hostileKey(label)
	pad := 16 - len(plaintext)%16
	buf := append(slices.Clone(plaintext), slices.Repeat([]byte{byte(pad)}, pad)...)
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	inner := base64.StdEncoding.EncodeToString(buf)
	raw := append(append([]byte(tamperFingerprint(label)), iv...), inner...)
	return base64.StdEncoding.EncodeToString(raw)
}

// TestStoredValueFormatLimits demonstrates, and so pins, what the stored
// format cannot detect (see the comment at the top of this file). It
// passes while the limits are as the README states them.
func TestStoredValueFormatLimits(t *testing.T) {
	t.Parallel()
	f := kind("stored values")
	ctx := context.Background()

	t.Run("replay of an older value of the same row", func(t *testing.T) {
		t.Parallel()
		_, pool := pgtest.Migrated(t)
		ring := hostileRing(t, tamperK1)
		s := secrets.New(ring).Model("users", 42)
		old, revoked := hostileValue("replay-old-token", 40), hostileValue("replay-new-token", 40)
		hostileMustSet(t, s, pool, "api_token", old)
		var oldText string
		if err := pool.QueryRow(ctx, `SELECT value FROM secrets`).Scan(&oldText); err != nil {
			t.Fatal(err)
		}
		hostileMustSet(t, s, pool, "api_token", revoked)
		f.cases.Add(3)
		f.mutations.Add(3)
		f.operations.Add(6)

		// The old value, put back, reads as valid: the replay is not detected.
		if _, err := pool.Exec(ctx, `UPDATE secrets SET value = $1`, oldText); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, pool, "api_token"); err != nil || got != old {
			t.Errorf("replayed old value: got (%T, %v); the format cannot detect a replay, "+
				"so the old value should read back", got, err)
		}
		rep, err := rotation.Verify(ctx, pool, ring, rotation.Options{})
		if err != nil || rep.Current != 1 {
			t.Errorf("Verify over a replayed value: %+v, %v; want it counted as current", rep, err)
		}

		// Deleted and written again, the row takes the old value too.
		if ok, err := s.Delete(ctx, pool, "api_token"); !ok || err != nil {
			t.Fatalf("Delete: %v, %v", ok, err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO secrets (key, "group", owner_id, value)
			VALUES ('api_token', 'users', 42, $1)`, oldText); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, pool, "api_token"); err != nil || got != old {
			t.Errorf("old value in a re-created row: got (%T, %v); want the old value", got, err)
		}

		// Rotation, then dropping the old key, bounds the replay.
		next := hostileRing(t, tamperK2, tamperK1)
		hostileMustSet(t, s, pool, "api_token", revoked)
		if _, err := rotation.Rotate(ctx, pool, next, rotation.Options{}); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `UPDATE secrets SET value = $1`, oldText); err != nil {
			t.Fatal(err)
		}
		dropped := secrets.New(hostileRing(t, tamperK2)).Model("users", 42)
		_, err = dropped.Get(ctx, pool, "api_token")
		if !errors.Is(err, secrets.ErrWrongKey) {
			t.Errorf("replay of a value sealed with a dropped key: got %v, want ErrWrongKey", err)
		}
		if err != nil {
			checkLeaks(t, f, "replay error", err.Error())
		}
	})

	t.Run("legacy values move and can be rewritten", func(t *testing.T) {
		t.Parallel()
		_, pool := pgtest.Migrated(t)
		ring := hostileRing(t, tamperK1).WithLegacyReads()
		f.cases.Add(2)
		f.mutations.Add(2)
		f.operations.Add(4)

		// A legacy value of one owner, written into another owner's row,
		// reads there: no scope binds it.
		value := hostileValue("legacy-of-owner-1", 20)
		pt, _ := json.Marshal(value)
		iv := []byte("0123456789abcdef")
		text := tamperLegacySeal(tamperK1, iv, pt)
		if _, err := pool.Exec(ctx, `INSERT INTO secrets (key, "group", owner_id, value)
			VALUES ('token', 'users', 2, $1)`, text); err != nil {
			t.Fatal(err)
		}
		s := secrets.New(ring).Model("users", 2)
		if got, err := s.Get(ctx, pool, "token"); err != nil || got != value {
			t.Errorf("legacy value moved to another owner: got (%T, %v); "+
				"legacy values have no scope, so it should read", got, err)
		}
		// Without legacy reads, the default, it does not open.
		_, err := secrets.New(hostileRing(t, tamperK1)).Model("users", 2).Get(ctx, pool, "token")
		if !errors.Is(err, secrets.ErrLegacyFormat) || !errors.Is(err, secrets.ErrIntegrity) {
			t.Errorf("legacy value without legacy reads: got %v, want ErrLegacyFormat", err)
		}

		// Its first block is known (`"s3cr3t-legacy-o`), so flipping IV
		// bits turns it into text of the attacker's choice.
		want := `"s3cr3t-forged-X`
		forged := slices.Clone(iv)
		for i := range forged {
			forged[i] ^= pt[i] ^ want[i]
		}
		text = tamperLegacySeal(tamperK1, iv, pt) // same ciphertext
		raw, _ := base64.StdEncoding.DecodeString(text)
		copy(raw[64:80], forged)
		if _, err := pool.Exec(ctx, `UPDATE secrets SET value = $1`,
			base64.StdEncoding.EncodeToString(raw)); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, pool, "token")
		if err != nil || !strings.HasPrefix(fmt.Sprint(got), want[1:]) {
			t.Errorf("legacy value with flipped IV bits: got (%T, %v); "+
				"legacy values have no MAC, so the forged text should read", got, err)
		}
	})
}

// hostileMustSet stores value or fails the test.
func hostileMustSet(t *testing.T, s secrets.Store, db secrets.DBTX, key string, value any) {
	t.Helper()
	if err := s.Set(context.Background(), db, key, value); err != nil {
		t.Fatalf("Set %s %q: %v", s, key, err)
	}
}
