package reliability_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// The tenant isolation property: random sequences of operations over many
// scopes, run against a real table and against a model of what each scope
// must hold, agree after every operation. A sequence that disagrees is
// shrunk to the shortest one that still does, and printed.

const isoKind = "tenant isolation"

var isoSeedFlag = flag.Uint64("isolation-seed", 0,
	"run TestTenantIsolation on this one sequence seed only, as printed by a failure")

// isoScope is a group and, when hasOwner, an owner.
type isoScope struct {
	group    string
	owner    int64
	hasOwner bool
}

// isoName is one secret: a scope and a key.
type isoName struct {
	isoScope
	key string
}

func (s isoScope) String() string {
	if !s.hasOwner {
		return strconv.QuoteToASCII(s.group) + "/none"
	}
	return strconv.QuoteToASCII(s.group) + "/" + strconv.FormatInt(s.owner, 10)
}

func (n isoName) String() string { return n.isoScope.String() + " " + strconv.QuoteToASCII(n.key) }

// store returns the library's store for the scope.
func (s isoScope) store(ring *secrets.Keyring) secrets.Store {
	st := secrets.New(ring).Group(s.group)
	if s.hasOwner {
		st = st.Owner(s.owner)
	}
	return st
}

func (n isoName) secretsName() secrets.Name { return n.store(nil).Name(n.key) }

func isoNameOf(n secrets.Name) isoName {
	in := isoName{isoScope: isoScope{group: n.Group}, key: n.Key}
	if n.Owner != nil {
		in.owner, in.hasOwner = *n.Owner, true
	}
	return in
}

// isoScopePairs are scopes in pairs that a careless encoding of the scope
// would confuse: "a" owner 1 and "a/1" with no owner print alike in the
// PHP original's style, no owner and owner 0 are both "zero", and so on.
var isoScopePairs = [][2]isoScope{
	{{group: "a", owner: 1, hasOwner: true}, {group: "a/1"}},
	{{group: "a", owner: 0, hasOwner: true}, {group: "a/0"}},
	{{group: "global"}, {group: "global", owner: 0, hasOwner: true}},
	{{group: "users", owner: 42, hasOwner: true}, {group: "users/42"}},
	{{group: "users"}, {group: "Users"}},
	{{group: "users", owner: math.MaxInt64, hasOwner: true}, {group: "users", owner: 1,
		hasOwner: true}},
	{{group: "a"}, {group: "a "}},
}

// isoKeys overlap across scopes; some differ only in case, a trailing
// space, or Unicode normalization ("é" precomposed and decomposed).
var isoKeys = []string{"token", "Token", "token ", "a/1", "\u00e9", "e\u0301", "api_key", "global"}

type isoOpKind int

const (
	isoSet isoOpKind = iota
	isoGet
	isoDelete
	isoList
	isoSetMany
	isoRotate
)

func (k isoOpKind) String() string {
	return [...]string{"set", "get", "delete", "list", "setmany", "rotate"}[k]
}

// isoEntry is one write: a name and the index of the value written.
type isoEntry struct {
	name  isoName
	value int
}

// isoOp is one step of a sequence. Values are indexes into isoValue, so a
// sequence can be printed without any secret text.
type isoOp struct {
	kind    isoOpKind
	name    isoName    // set, get, delete; list uses its scope
	value   int        // set
	entries []isoEntry // setmany
	batch   int        // rotate
}

func (op isoOp) String() string {
	switch op.kind {
	case isoSet:
		return fmt.Sprintf("set %v = #%d", op.name, op.value)
	case isoList:
		return fmt.Sprintf("list %v", op.name.isoScope)
	case isoSetMany:
		parts := make([]string, len(op.entries))
		for i, e := range op.entries {
			parts[i] = fmt.Sprintf("%v = #%d", e.name, e.value)
		}
		return "setmany [" + strings.Join(parts, ", ") + "]"
	case isoRotate:
		return fmt.Sprintf("rotate to the next key, batch %d", op.batch)
	}
	return fmt.Sprintf("%v %v", op.kind, op.name)
}

// isoBases are the registered secret texts that every stored value starts
// with: value #i is isoBases()[i%len] + "~" + i.
var isoBases = sync.OnceValue(func() []string {
	tag := mrand.Uint32()
	bases := make([]string, 16)
	for i := range bases {
		bases[i] = secretValue(fmt.Sprintf("iso-s3cr3t-%08x-%02d", tag, i))
	}
	return bases
})

func isoValue(i int) string {
	b := isoBases()
	return b[i%len(b)] + "~" + strconv.Itoa(i)
}

// isoWriteOf returns the index of the write that stored text, or -1 for a
// text that no write of this suite made.
func isoWriteOf(text string) int {
	_, num, ok := strings.Cut(text, "~")
	i, err := strconv.Atoi(num)
	if !ok || err != nil || i < 0 || isoValue(i) != text {
		return -1
	}
	return i
}

// isoMasterKey returns a new random master key, in the base64: or the hex
// form, registered with the leak watch.
func isoMasterKey() string {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	text := "base64:" + base64.StdEncoding.EncodeToString(raw)
	if raw[0]%2 == 0 { // half of them in the hex form
		text = hex.EncodeToString(raw)
	}
	return secretKey(text, raw)
}

// isoRing builds a keyring from master keys, current first.
func isoRing(t testing.TB, current string, previous ...string) *secrets.Keyring {
	t.Helper()
	r, err := secrets.NewKeyring(current, previous...)
	if err != nil {
		t.Fatalf("keyring: %v", err) // errors of NewKeyring never hold a key
	}
	return r
}

// isoShown returns the text of err for a failure message, or a note in its
// place if the text holds a registered secret (checkLeaks counts that), so
// that a failure never prints one.
func isoShown(err error) string {
	if err == nil {
		return "no error"
	}
	return isoShownText(err.Error())
}

// isoShownText is isoShown for any text, such as a command's output.
func isoShownText(s string) string {
	watch.mu.Lock()
	defer watch.mu.Unlock()
	for _, n := range watch.needles {
		if strings.Contains(s, n) {
			return "(text withheld: it holds a registered secret)"
		}
	}
	return s
}

// isoGenerate draws a sequence of n operations over a few confusable scopes
// and overlapping keys.
func isoGenerate(rng *mrand.Rand, n int) []isoOp {
	var scopes []isoScope
	for _, i := range rng.Perm(len(isoScopePairs))[:2] {
		scopes = append(scopes, isoScopePairs[i][0], isoScopePairs[i][1])
	}
	extra := isoScopePairs[rng.IntN(len(isoScopePairs))][rng.IntN(2)]
	if !slices.Contains(scopes, extra) {
		scopes = append(scopes, extra)
	}
	var keys []string
	for _, i := range rng.Perm(len(isoKeys))[:3] {
		keys = append(keys, isoKeys[i])
	}
	if rng.IntN(2) == 0 && !slices.Contains(keys, "\u00e9") && !slices.Contains(keys, "e\u0301") {
		keys = append(keys, "\u00e9", "e\u0301")
	}
	name := func() isoName {
		return isoName{scopes[rng.IntN(len(scopes))], keys[rng.IntN(len(keys))]}
	}

	ops := make([]isoOp, 0, n)
	next := 0
	for len(ops) < n {
		var op isoOp
		switch w := rng.IntN(100); {
		case w < 30:
			op = isoOp{kind: isoSet, name: name(), value: next}
			next++
		case w < 55:
			op = isoOp{kind: isoGet, name: name()}
		case w < 67:
			op = isoOp{kind: isoDelete, name: name()}
		case w < 79:
			op = isoOp{kind: isoList, name: name()}
		case w < 96:
			op = isoOp{kind: isoSetMany}
			for range 2 + rng.IntN(4) { // the same name twice is allowed: the last wins
				op.entries = append(op.entries, isoEntry{name(), next})
				next++
			}
		default:
			op = isoOp{kind: isoRotate, batch: 1 + rng.IntN(7)}
		}
		ops = append(ops, op)
	}
	return ops
}

// isoEnv runs sequences against one table.
type isoEnv struct {
	t     *testing.T
	f     *figures
	pool  *pgxpool.Pool
	keys  []string
	rings map[[2]int]*secrets.Keyring
	// writer names the secret each value index was written to, for
	// messages about a value that turned up elsewhere.
	writer map[int]isoName
}

// isoState is the model: what each secret must hold, by value index, and
// which key generation is current.
type isoState struct {
	model map[isoName]int
	gen   int
}

// isoFailure is the first disagreement of a run.
type isoFailure struct {
	step int    // index of the step, or len(ops) for the final check
	what string // the step's kind, or "final"
	msg  string

	lost, unread int64 // found by the final check of the table
}

// ring returns the keyring of key generation gen: its key current and,
// unless alone or gen is 0, the key before it previous.
func (e *isoEnv) ring(gen int, alone bool) *secrets.Keyring {
	k := [2]int{gen % len(e.keys), 0}
	if alone || gen == 0 {
		k[1] = -1
	} else {
		k[1] = (gen - 1) % len(e.keys)
	}
	if r, ok := e.rings[k]; ok {
		return r
	}
	r := isoRing(e.t, e.keys[k[0]])
	if k[1] >= 0 {
		r = isoRing(e.t, e.keys[k[0]], e.keys[k[1]])
	}
	e.rings[k] = r
	checkLeaks(e.t, e.f, "keyring", formatted(r))
	return r
}

// leak checks the text of an error, and its formatted forms, for secrets.
func (e *isoEnv) leak(where string, err error) {
	e.t.Helper()
	if err != nil {
		checkLeaks(e.t, e.f, where+" error", err.Error()+"\n"+formatted(err))
	}
}

// describe says, by index, what value a read returned.
func (e *isoEnv) describe(text string) string {
	w := isoWriteOf(text)
	if w < 0 {
		return "a value no step wrote"
	}
	return fmt.Sprintf("#%d (written to %v)", w, e.writer[w])
}

// run runs ops on an emptied table and returns the first disagreement with
// the model, or nil.
func (e *isoEnv) run(ctx context.Context, ops []isoOp) *isoFailure {
	e.t.Helper()
	if _, err := e.pool.Exec(ctx, "TRUNCATE secrets RESTART IDENTITY"); err != nil {
		e.t.Fatalf("truncate: %v", isoShown(err))
	}
	st := &isoState{model: map[isoName]int{}}
	var fail *isoFailure
	for i, op := range ops {
		if msg := e.step(ctx, st, op); msg != "" {
			fail = &isoFailure{step: i, what: op.kind.String(), msg: msg}
			break
		}
	}
	lost, unread, msg := e.final(ctx, st)
	if fail == nil && msg != "" {
		fail = &isoFailure{step: len(ops), what: "final", msg: msg}
	}
	if fail != nil {
		fail.lost, fail.unread = lost, unread
	}
	return fail
}

// step runs one operation and compares what it observes with the model.
// It returns what differs, or "".
func (e *isoEnv) step(ctx context.Context, st *isoState, op isoOp) string {
	e.f.operations.Add(1)
	ring := e.ring(st.gen, false)
	switch op.kind {
	case isoSet:
		err := op.name.store(ring).Set(ctx, e.pool, op.name.key, isoValue(op.value))
		e.leak("set", err)
		if err != nil {
			return fmt.Sprintf("set failed: %v", isoShown(err))
		}
		st.model[op.name] = op.value
	case isoGet:
		return e.get(ctx, st, ring, op.name)
	case isoDelete:
		gone, err := op.name.store(ring).Delete(ctx, e.pool, op.name.key)
		e.leak("delete", err)
		_, had := st.model[op.name]
		if err != nil || gone != had {
			return fmt.Sprintf("delete reported %v, %v; want %v, no error", gone,
				isoShown(err), had)
		}
		delete(st.model, op.name)
	case isoList:
		return e.list(ctx, st, op.name.isoScope)
	case isoSetMany:
		entries := make([]secrets.Entry, len(op.entries))
		for i, en := range op.entries {
			entries[i] = secrets.Entry{Name: en.name.secretsName(), Value: isoValue(en.value)}
		}
		err := secrets.SetMany(ctx, e.pool, ring, entries)
		e.leak("setmany", err)
		if err != nil {
			return fmt.Sprintf("setmany failed: %v", isoShown(err))
		}
		for _, en := range op.entries {
			st.model[en.name] = en.value
		}
	case isoRotate:
		return e.rotate(ctx, st, op.batch)
	}
	return ""
}

func (e *isoEnv) get(ctx context.Context, st *isoState, ring *secrets.Keyring, n isoName) string {
	got, err := secrets.GetAs[string](ctx, n.store(ring), e.pool, n.key)
	e.leak("get", err)
	want, ok := st.model[n]
	switch {
	case !ok && errors.Is(err, secrets.ErrNotFound):
		return ""
	case !ok && err == nil:
		return fmt.Sprintf("get returned %s; want not found", e.describe(got))
	case !ok:
		return fmt.Sprintf("get failed with %v; want not found", isoShown(err))
	case err != nil:
		return fmt.Sprintf("get failed with %v; want #%d", isoShown(err), want)
	case got != isoValue(want):
		return fmt.Sprintf("get returned %s; want #%d", e.describe(got), want)
	}
	return ""
}

func (e *isoEnv) list(ctx context.Context, st *isoState, s isoScope) string {
	infos, err := s.store(nil).List(ctx, e.pool)
	e.leak("list", err)
	if err != nil {
		return fmt.Sprintf("list failed: %v", isoShown(err))
	}
	var got, want []string
	for _, in := range infos {
		checkLeaks(e.t, e.f, "list info", formatted(in))
		n := isoNameOf(in.Name)
		if n.isoScope != s {
			return fmt.Sprintf("list returned %v, a secret of another scope", n)
		}
		got = append(got, strconv.QuoteToASCII(n.key))
	}
	for n := range st.model {
		if n.isoScope == s {
			want = append(want, strconv.QuoteToASCII(n.key))
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		return fmt.Sprintf("list keys differ (-want +got):\n%s", diff)
	}
	return ""
}

func (e *isoEnv) rotate(ctx context.Context, st *isoState, batch int) string {
	next := e.ring(st.gen+1, false)
	res, err := rotation.Rotate(ctx, e.pool, next, rotation.Options{BatchSize: batch})
	e.leak("rotate", err)
	checkLeaks(e.t, e.f, "rotation result", formatted(res))
	if err != nil {
		return fmt.Sprintf("rotate failed: %v", isoShown(err))
	}
	st.gen++ // the table is moved, or partly: the model's ring moves with it
	want := rotation.Result{Rotated: int64(len(st.model))}
	if diff := cmp.Diff(want, res); diff != "" {
		return fmt.Sprintf("rotate result (-want +got):\n%s", diff)
	}
	return ""
}

// final compares the whole table with the model, reading every row with
// the current key alone. It counts rows lost (missing or holding another
// value) and unreadable, and returns the first difference.
func (e *isoEnv) final(ctx context.Context, st *isoState) (lost, unread int64, msg string) {
	note := func(m string) {
		if msg == "" {
			msg = m
		}
	}
	e.f.operations.Add(1)
	infos, err := secrets.ListAll(ctx, e.pool)
	e.leak("list all", err)
	if err != nil {
		return 0, 0, fmt.Sprintf("list all failed: %v", isoShown(err))
	}
	seen := map[isoName]bool{}
	for _, in := range infos {
		n := isoNameOf(in.Name)
		if _, ok := st.model[n]; !ok || seen[n] {
			note(fmt.Sprintf("final: the table holds %v, which the model has not (or twice)", n))
		}
		seen[n] = true
	}

	ring := e.ring(st.gen, true)
	names := make([]isoName, 0, len(st.model))
	for n := range st.model {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b isoName) int {
		return strings.Compare(a.String(), b.String())
	})
	for _, n := range names {
		want := st.model[n]
		e.f.operations.Add(1)
		got, err := secrets.GetAs[string](ctx, n.store(ring), e.pool, n.key)
		e.leak("final get", err)
		switch {
		case errors.Is(err, secrets.ErrNotFound) || (err == nil && got != isoValue(want)):
			lost++
			note(fmt.Sprintf("final: %v lost: want #%d", n, want))
		case err != nil:
			unread++
			note(fmt.Sprintf("final: %v does not read under the current key: %v", n, isoShown(err)))
		}
	}

	e.f.operations.Add(1)
	rep, err := rotation.Verify(ctx, e.pool, ring, rotation.Options{})
	e.leak("verify", err)
	checkLeaks(e.t, e.f, "verify report", formatted(rep))
	if err != nil || rep.Current != int64(len(st.model)) || rep.Total != rep.Current {
		note(fmt.Sprintf("final: verify under the current key alone: %d rows, %d current, "+
			"%d unreadable, %v; want %d current", rep.Total, rep.Current, rep.Unreadable,
			isoShown(err), len(st.model)))
	}
	return lost, unread, msg
}

// isoMaxCandidates bounds the runs that shrinking one failure may take.
const isoMaxCandidates = 400

// shrink returns the shortest sequence it finds that still fails the same
// way as fail: it drops the steps after the failing one, then removes
// chunks of steps, halving the chunk down to single steps, then single
// entries of SetMany steps, until nothing more can go.
func (e *isoEnv) shrink(ctx context.Context, ops []isoOp, fail *isoFailure) ([]isoOp, *isoFailure) {
	runs := 0
	fails := func(cand []isoOp) *isoFailure {
		if runs >= isoMaxCandidates {
			return nil
		}
		runs++
		e.f.cases.Add(1)
		got := e.run(ctx, cand)
		if got == nil || got.what != fail.what {
			return nil
		}
		return got
	}
	if fail.step < len(ops) {
		ops = slices.Clone(ops[:fail.step+1])
	}
	for changed := true; changed; {
		changed = false
		for chunk := max(len(ops)/2, 1); chunk >= 1; chunk /= 2 {
			for i := 0; i+chunk <= len(ops); {
				cand := slices.Concat(ops[:i], ops[i+chunk:])
				if f := fails(cand); f != nil {
					ops, fail, changed = cand, f, true
					continue
				}
				i += chunk
			}
		}
		for i := range ops {
			for j := 0; len(ops[i].entries) > 1 && j < len(ops[i].entries); {
				cand := slices.Clone(ops)
				cand[i].entries = slices.Delete(slices.Clone(ops[i].entries), j, j+1)
				if f := fails(cand); f != nil {
					ops, fail, changed = cand, f, true
					continue
				}
				j++
			}
		}
	}
	return ops, fail
}

// TestTenantIsolation attacks the walls between scopes: random sequences
// of Set, Get, Delete, List, SetMany across scopes and key rotations, over
// groups that print alike ("a/1" and group "a" owner 1), owner 0 and no
// owner, and keys that differ only in case, a trailing space or Unicode
// normalization. After every step the observable result must match a
// model of what each scope holds, and at the end the whole table must.
// A failing sequence is shrunk and printed, values as indexes only.
func TestTenantIsolation(t *testing.T) {
	f := kind(isoKind)
	_, pool := pgtest.Migrated(t)
	ctx := context.Background()
	e := &isoEnv{t: t, f: f, pool: pool, rings: map[[2]int]*secrets.Keyring{}}
	for range 4 {
		e.keys = append(e.keys, isoMasterKey())
	}

	sequences, steps := scale(30, 20), 60
	base := uint64(time.Now().UnixNano())
	if *isoSeedFlag != 0 {
		sequences, base = 1, *isoSeedFlag
	}
	failed := 0
	for i := range sequences {
		seed := base + uint64(i)
		ops := isoGenerate(mrand.New(mrand.NewPCG(seed, 0x150)), steps)
		e.writer = map[int]isoName{}
		for _, op := range ops {
			if op.kind == isoSet {
				e.writer[op.value] = op.name
			}
			for _, en := range op.entries {
				e.writer[en.value] = en.name
			}
		}
		checkLeaks(t, f, "store", formatted(ops[0].name.store(e.ring(0, false))))

		f.cases.Add(1)
		fail := e.run(ctx, ops)
		if fail == nil {
			continue
		}
		if fail.lost > 0 {
			f.lose(t, fail.lost, fmt.Sprintf("sequence with seed %d", seed))
		}
		if fail.unread > 0 {
			f.unread(t, fail.unread, fmt.Sprintf("sequence with seed %d", seed))
		}
		short, sf := e.shrink(ctx, ops, fail)
		report := isoReport(seed, len(ops), short, sf)
		checkLeaks(t, f, "failure report", report)
		t.Error(report)
		if failed++; failed == 3 {
			t.Fatalf("stopping after %d failed sequences", failed)
		}
	}
}

// isoReport describes a failing sequence, shrunk, by step.
func isoReport(seed uint64, n int, ops []isoOp, fail *isoFailure) string {
	var b strings.Builder
	fmt.Fprintf(&b, "tenant isolation broken: sequence seed %d (rerun with "+
		"-run TestTenantIsolation -args -isolation-seed=%d); %d steps shrunk to %d:\n",
		seed, seed, n, len(ops))
	for i, op := range ops {
		fmt.Fprintf(&b, "  step %d: %v\n", i, op)
	}
	if fail.step < len(ops) {
		fmt.Fprintf(&b, "step %d (%s) differs from the model: %s", fail.step, fail.what, fail.msg)
	} else {
		fmt.Fprintf(&b, "after the last step: %s", fail.msg)
	}
	return b.String()
}
