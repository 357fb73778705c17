package reliability_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// The concurrency kind: many goroutines, and two processes, reading,
// writing, deleting and rotating the same table at once.

const concKind = "concurrency"

// concTimeout bounds every scenario; a scenario that hangs is a deadlock.
const concTimeout = 3 * time.Minute

// concBases are the registered secret texts that every value of this kind
// starts with; concValue appends which name, writer and write it is.
var concBases = sync.OnceValue(func() []string {
	tag := mrand.Uint32()
	bases := make([]string, 16)
	for i := range bases {
		bases[i] = secretValue(fmt.Sprintf("conc-s3cr3t-%08x-%02d", tag, i))
	}
	return bases
})

// concValue is the value that writer w writes to name number name in its
// write number seq.
func concValue(name, w, seq int) string {
	b := concBases()
	return fmt.Sprintf("%s~%d.%d.%d", b[(name+w+seq)%len(b)], name, w, seq)
}

// concNameOf returns the name number a value was written for, or -1 for a
// value that concValue did not make.
func concNameOf(text string) int {
	_, tag, _ := strings.Cut(text, "~")
	parts := strings.Split(tag, ".")
	if len(parts) != 3 {
		return -1
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return -1
		}
		n[i] = v
	}
	if concValue(n[0], n[1], n[2]) != text {
		return -1
	}
	return n[0]
}

// concNames returns every key in every scope.
func concNames(scopes []isoScope, keys []string) []isoName {
	var names []isoName
	for _, s := range scopes {
		for _, k := range keys {
			names = append(names, isoName{s, k})
		}
	}
	return names
}

// concWritten records, per name number, every value some writer tried to
// store there, before the write is sent.
type concWritten struct {
	mu     sync.Mutex
	values []map[string]bool
}

func newConcWritten(n int) *concWritten {
	w := &concWritten{values: make([]map[string]bool, n)}
	for i := range w.values {
		w.values[i] = map[string]bool{}
	}
	return w
}

func (w *concWritten) add(name int, v string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.values[name][v] = true
}

func (w *concWritten) has(name int, v string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.values[name][v]
}

// concLeak checks an error, as text and formatted, for secrets.
func concLeak(t testing.TB, f *figures, where string, err error) {
	t.Helper()
	if err != nil {
		checkLeaks(t, f, where+" error", err.Error()+"\n"+formatted(err))
	}
}

// concTruncate empties the table.
func concTruncate(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), "TRUNCATE secrets RESTART IDENTITY"); err != nil {
		t.Fatalf("truncate: %v", isoShown(err))
	}
}

// concCheckTable reads every expected row with ring and compares it with
// want (value text by name); a name missing from want must have no row.
// It counts lost and unreadable rows, and extra rows as lost ones too.
func concCheckTable(t *testing.T, f *figures, pool *pgxpool.Pool, ring *secrets.Keyring,
	want map[isoName]string, what string) {
	t.Helper()
	ctx := context.Background()
	f.operations.Add(1)
	infos, err := secrets.ListAll(ctx, pool)
	concLeak(t, f, "list all", err)
	if err != nil {
		t.Fatalf("%s: list all: %v", what, isoShown(err))
	}
	extra := 0
	for _, in := range infos {
		if _, ok := want[isoNameOf(in.Name)]; !ok {
			extra++
		}
	}
	if extra > 0 || len(infos)-extra != len(want) {
		t.Errorf("%s: table has %d rows, %d of them unexpected; want %d rows",
			what, len(infos), extra, len(want))
	}

	var lost, unread int64
	for n, v := range want {
		f.operations.Add(1)
		got, err := secrets.GetAs[string](ctx, n.store(ring), pool, n.key)
		concLeak(t, f, "final get", err)
		switch {
		case errors.Is(err, secrets.ErrNotFound) || (err == nil && got != v):
			lost++
		case err != nil:
			unread++
		}
	}
	if lost > 0 {
		f.lose(t, lost, what+": missing or not the last value written")
	}
	if unread > 0 {
		f.unread(t, unread, what+": do not open under the keyring that should open them")
	}

	f.operations.Add(1)
	rep, err := rotation.Verify(ctx, pool, ring, rotation.Options{BatchSize: 50})
	concLeak(t, f, "verify", err)
	checkLeaks(t, f, "verify report", formatted(rep))
	if err != nil || rep.Unreadable != 0 || rep.Total != int64(len(infos)) {
		t.Errorf("%s: verify: %d rows, %d current, %d previous, %d unreadable, %v; want %d rows "+
			"and none unreadable", what, rep.Total, rep.Current, rep.Previous, rep.Unreadable,
			isoShown(err), len(infos))
	}
}

// TestConcurrentOverlappingScopes attacks scope isolation under load: 16
// goroutines set, read, delete, list and set-many the same and different
// keys in scopes that print alike. Every read must return not found or a
// value that some goroutine wrote for that exact name, never another
// name's; every list only its scope's keys; and at the end each name has at
// most one row, which opens and holds a value written for it.
func TestConcurrentOverlappingScopes(t *testing.T) {
	f := kind(concKind)
	f.cases.Add(1)
	_, pool := pgtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), concTimeout)
	defer cancel()
	ring := isoRing(t, isoMasterKey())
	checkLeaks(t, f, "keyring", formatted(ring))

	scopes := []isoScope{{group: "global"}, {group: "global", owner: 0, hasOwner: true},
		{group: "a", owner: 1, hasOwner: true}, {group: "a/1"}, {group: "users", owner: 1,
			hasOwner: true}}
	names := concNames(scopes, []string{"token", "Token", "api_key"})
	index := map[isoName]int{}
	for i, n := range names {
		index[n] = i
	}
	written := newConcWritten(len(names))
	const goroutines = 16
	perGoroutine := scale(200, 10)

	var wg sync.WaitGroup
	for w := range goroutines {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for seq := range perGoroutine {
				if ctx.Err() != nil {
					return
				}
				concStep(ctx, t, f, pool, ring, rng, names, index, written, w, seq)
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("goroutines did not finish within %v: deadlock?", concTimeout)
	}

	concCheckWritten(ctx, t, f, pool, ring, index, written, false)
}

// concCheckWritten checks that each name has at most one row (exactly one
// if all), which opens with ring and holds a value written for that name.
func concCheckWritten(ctx context.Context, t *testing.T, f *figures, pool *pgxpool.Pool,
	ring *secrets.Keyring, index map[isoName]int, written *concWritten, all bool) {
	t.Helper()
	f.operations.Add(1)
	infos, err := secrets.ListAll(ctx, pool)
	concLeak(t, f, "list all", err)
	if err != nil {
		t.Fatalf("list all: %v", isoShown(err))
	}
	rows := map[isoName]int{}
	var lost, unread int64
	for _, in := range infos {
		n := isoNameOf(in.Name)
		if rows[n]++; rows[n] > 1 {
			t.Errorf("%v has %d rows", n, rows[n])
		}
		i, ok := index[n]
		if !ok {
			t.Errorf("the table holds %v, which no goroutine wrote", n)
			continue
		}
		f.operations.Add(1)
		got, err := secrets.GetAs[string](ctx, n.store(ring), pool, n.key)
		concLeak(t, f, "final get", err)
		switch {
		case err != nil:
			unread++
		case !written.has(i, got):
			lost++
		}
	}
	for n := range index {
		if all && rows[n] == 0 {
			lost++
		}
	}
	if lost > 0 {
		f.lose(t, lost, "rows missing or holding a value never written to them")
	}
	if unread > 0 {
		f.unread(t, unread, "rows present in the table do not read")
	}
}

// concStep is one random operation of TestConcurrentOverlappingScopes.
func concStep(ctx context.Context, t *testing.T, f *figures, pool *pgxpool.Pool,
	ring *secrets.Keyring, rng *mrand.Rand, names []isoName, index map[isoName]int,
	written *concWritten, w, seq int) {
	t.Helper()
	i := rng.IntN(len(names))
	n := names[i]
	f.operations.Add(1)
	switch p := rng.IntN(100); {
	case p < 35:
		v := concValue(i, w, seq)
		written.add(i, v)
		err := n.store(ring).Set(ctx, pool, n.key, v)
		concLeak(t, f, "set", err)
		if err != nil {
			t.Errorf("set %v: %v", n, isoShown(err))
		}
	case p < 70:
		got, err := secrets.GetAs[string](ctx, n.store(ring), pool, n.key)
		concLeak(t, f, "get", err)
		switch {
		case errors.Is(err, secrets.ErrNotFound):
		case err != nil:
			t.Errorf("get %v: %v", n, isoShown(err))
		case concNameOf(got) != i:
			f.lose(t, 1, fmt.Sprintf("get %v returned a value written to name %d", n,
				concNameOf(got)))
		case !written.has(i, got):
			f.lose(t, 1, fmt.Sprintf("get %v returned a value never written", n))
		}
	case p < 80:
		_, err := n.store(ring).Delete(ctx, pool, n.key)
		concLeak(t, f, "delete", err)
		if err != nil {
			t.Errorf("delete %v: %v", n, isoShown(err))
		}
	case p < 90:
		infos, err := n.store(nil).List(ctx, pool)
		concLeak(t, f, "list", err)
		if err != nil {
			t.Errorf("list %v: %v", n.isoScope, isoShown(err))
		}
		for _, in := range infos {
			if m := isoNameOf(in.Name); m.isoScope != n.isoScope {
				t.Errorf("list %v returned %v, of another scope", n.isoScope, m)
			}
		}
	default:
		var entries []secrets.Entry
		for k := range 2 + rng.IntN(3) {
			j := rng.IntN(len(names))
			v := concValue(j, w, seq*8+k)
			written.add(j, v)
			entries = append(entries, secrets.Entry{Name: names[j].secretsName(), Value: v})
		}
		err := secrets.SetMany(ctx, pool, ring, entries)
		concLeak(t, f, "setmany", err)
		if err != nil {
			t.Errorf("setmany of %d entries: %v", len(entries), isoShown(err))
		}
	}
}

// TestConcurrentUpsertOneGlobal attacks the PHP original's duplicate
// global row: 32 goroutines set one secret at once (a few through SetMany),
// in scopes with no owner, owner 0, and a group that looks like a scope.
// Afterwards exactly one row holds it, with one of the written values.
func TestConcurrentUpsertOneGlobal(t *testing.T) {
	f := kind(concKind)
	_, pool := pgtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), concTimeout)
	defer cancel()
	ring := isoRing(t, isoMasterKey())
	targets := []isoScope{{group: "global"}, {group: "users", owner: 0, hasOwner: true},
		{group: "a/1"}, {group: "global", owner: 1, hasOwner: true}}

	for round := range scale(8, 20) {
		f.cases.Add(1)
		target := isoName{targets[round%len(targets)], fmt.Sprintf("shared-%d", round)}
		if round%3 == 2 {
			target.key = "e\u0301-" + strconv.Itoa(round)
		}
		const goroutines = 32
		values := make([]string, goroutines)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range goroutines {
			values[w] = concValue(round, w, 0)
			wg.Go(func() {
				<-start
				f.operations.Add(1)
				var err error
				if w%4 == 3 {
					own := isoName{target.isoScope, fmt.Sprintf("own-%d-%d", round, w)}
					err = secrets.SetMany(ctx, pool, ring, []secrets.Entry{
						{Name: target.secretsName(), Value: values[w]},
						{Name: own.secretsName(), Value: concValue(round, w, 1)},
					})
				} else {
					err = target.store(ring).Set(ctx, pool, target.key, values[w])
				}
				concLeak(t, f, "set", err)
				if err != nil {
					t.Errorf("set %v: %v", target, isoShown(err))
				}
			})
		}
		close(start)
		wg.Wait()
		concCheckOne(ctx, t, f, pool, ring, target, values)
	}
}

// concCheckOne checks that exactly one row holds target, with one of values.
func concCheckOne(ctx context.Context, t *testing.T, f *figures, pool *pgxpool.Pool,
	ring *secrets.Keyring, target isoName, values []string) {
	t.Helper()
	var owner *int64
	if target.hasOwner {
		owner = &target.owner
	}
	var rows int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM secrets
		WHERE key = $1 AND "group" = $2 AND owner_id IS NOT DISTINCT FROM $3`,
		target.key, target.group, owner).Scan(&rows)
	if err != nil {
		t.Fatalf("count rows of %v: %v", target, isoShown(err))
	}
	switch {
	case rows == 0:
		f.lose(t, 1, fmt.Sprintf("%v: no row after 32 concurrent sets", target))
	case rows > 1:
		t.Errorf("%v: %d rows after concurrent sets, want exactly 1", target, rows)
	}

	f.operations.Add(1)
	got, err := secrets.GetAs[string](ctx, target.store(ring), pool, target.key)
	concLeak(t, f, "get", err)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		f.lose(t, 1, fmt.Sprintf("%v: not found after concurrent sets", target))
	case err != nil:
		f.unread(t, 1, fmt.Sprintf("%v: %v", target, isoShown(err)))
	case !slices.Contains(values, got):
		f.lose(t, 1, fmt.Sprintf("%v holds none of the values written", target))
	}
}

// concRotationRun is one round of writers running through a rotation.
type concRotationRun struct {
	t          *testing.T
	f          *figures
	pool       *pgxpool.Pool
	oldRing    *secrets.Keyring // the old key alone: an app not yet redeployed
	newRing    *secrets.Keyring // new current, old previous: a redeployed app
	writers    int
	oldWriters int // the first oldWriters writers write with oldRing
	names      [][]isoName
	// last is each writer's last acknowledged write per name: the value,
	// or "" for deleted. Only writer w touches last[w] until Wait.
	last []map[isoName]string
}

// seed writes perWriter names for each writer under the old key, and
// a few names each that only appear during the run.
func (r *concRotationRun) seed(ctx context.Context, round, perWriter int) {
	r.t.Helper()
	scopes := []isoScope{{group: "global"}, {group: "users", owner: 0, hasOwner: true},
		{group: "a/1"}, {group: "a", owner: 1, hasOwner: true}}
	var entries []secrets.Entry
	r.names = make([][]isoName, r.writers)
	r.last = make([]map[isoName]string, r.writers)
	for w := range r.writers {
		r.last[w] = map[isoName]string{}
		for j := range perWriter + 5 {
			n := isoName{scopes[j%len(scopes)], fmt.Sprintf("r%d-w%d-k%d", round, w, j)}
			r.names[w] = append(r.names[w], n)
			if j >= perWriter {
				continue // fresh: first written during the rotation
			}
			v := concValue(j, w, 1_000_000+round)
			r.last[w][n] = v
			entries = append(entries, secrets.Entry{Name: n.secretsName(), Value: v})
		}
	}
	r.f.operations.Add(1)
	err := secrets.SetMany(ctx, r.pool, r.oldRing, entries)
	concLeak(r.t, r.f, "seed", err)
	if err != nil {
		r.t.Fatalf("seed: %v", isoShown(err))
	}
}

// write runs writer w until done is closed and then extra more writes, so
// that some writes land after the rotation has passed their rows.
func (r *concRotationRun) write(ctx context.Context, w int, done <-chan struct{}, extra int) {
	ring := r.newRing
	if w < r.oldWriters {
		ring = r.oldRing
	}
	rng := mrand.New(mrand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
	after := 0
	for seq := 0; ctx.Err() == nil; seq++ {
		select {
		case <-done:
			if after++; after > extra {
				return
			}
		default:
		}
		r.f.operations.Add(1)
		j := rng.IntN(len(r.names[w]))
		n := r.names[w][j]
		switch p := rng.IntN(100); {
		case p < 80:
			v := concValue(j, w, seq)
			err := n.store(ring).Set(ctx, r.pool, n.key, v)
			if r.check("set", n, err) {
				r.last[w][n] = v
			}
		case p < 90:
			_, err := n.store(ring).Delete(ctx, r.pool, n.key)
			if r.check("delete", n, err) {
				r.last[w][n] = ""
			}
		default:
			k := (j + 1 + rng.IntN(len(r.names[w])-1)) % len(r.names[w])
			m := r.names[w][k]
			v1, v2 := concValue(j, w, seq), concValue(k, w, seq)
			err := secrets.SetMany(ctx, r.pool, ring, []secrets.Entry{
				{Name: n.secretsName(), Value: v1}, {Name: m.secretsName(), Value: v2}})
			if r.check("setmany", n, err) {
				r.last[w][n], r.last[w][m] = v1, v2
			}
		}
	}
}

// check reports a failed write; it returns whether the write succeeded.
func (r *concRotationRun) check(op string, n isoName, err error) bool {
	concLeak(r.t, r.f, op, err)
	if err != nil {
		r.t.Errorf("%s %v during rotation: %v", op, n, isoShown(err))
		return false
	}
	return true
}

// want returns the expected table: every writer's last acknowledged write.
func (r *concRotationRun) want() map[isoName]string {
	want := map[isoName]string{}
	for _, m := range r.last {
		for n, v := range m {
			if v != "" {
				want[n] = v
			}
		}
	}
	return want
}

// concRotateWithWriters seeds a table under an old key, then rotates it to
// a new key in small batches while writers keep writing, oldWriters of
// them with the old key alone. It checks the result, finishes with a
// second rotation where rows were written under the old key afterwards,
// and reads every row under the new key alone.
func concRotateWithWriters(t *testing.T, oldWriters int) {
	t.Helper()
	f := kind(concKind)
	_, pool := pgtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), concTimeout)
	defer cancel()

	for round := range scale(2, 10) {
		f.cases.Add(1)
		concTruncate(t, pool)
		oldKey, newKey := isoMasterKey(), isoMasterKey()
		r := &concRotationRun{t: t, f: f, pool: pool, writers: 6, oldWriters: oldWriters,
			oldRing: isoRing(t, oldKey), newRing: isoRing(t, newKey, oldKey)}
		newOnly := isoRing(t, newKey)
		r.seed(ctx, round, 40)

		done := make(chan struct{})
		var wg sync.WaitGroup
		for w := range r.writers {
			wg.Go(func() { r.write(ctx, w, done, 20) })
		}
		f.operations.Add(1)
		res, err := rotation.Rotate(ctx, pool, r.newRing, rotation.Options{BatchSize: 4})
		close(done)
		wg.Wait()
		if ctx.Err() != nil {
			t.Fatalf("round %d did not finish within %v: deadlock?", round, concTimeout)
		}
		concLeak(t, f, "rotate", err)
		checkLeaks(t, f, "rotation result", formatted(res))
		if err != nil {
			t.Fatalf("rotate with writers: %v", isoShown(err))
		}
		concCheckRotation(t, res, oldWriters)
		want := r.want()

		// Rows written under the old key after the rotation passed them are
		// readable "previous" rows, not unreadable ones; a second run moves
		// them.
		f.operations.Add(1)
		rep, err := rotation.Verify(ctx, pool, r.newRing, rotation.Options{BatchSize: 16})
		concLeak(t, f, "verify", err)
		if rep.Unreadable != 0 {
			f.unread(t, rep.Unreadable, "verify after a rotation with writers")
		}
		if err != nil || rep.Total != int64(len(want)) {
			t.Errorf("verify after a rotation with writers: %d rows, %v; want %d rows",
				rep.Total, isoShown(err), len(want))
		}
		if oldWriters == 0 && rep.Previous != 0 {
			t.Errorf("%d rows still under the old key although every writer used the new one",
				rep.Previous)
		}
		if oldWriters > 0 && rep.Previous == 0 {
			t.Errorf("no row under the old key after old-key writers wrote past the rotation: " +
				"the scenario did not happen")
		}
		f.operations.Add(1)
		res2, err := rotation.Rotate(ctx, pool, r.newRing, rotation.Options{BatchSize: 7})
		concLeak(t, f, "second rotate", err)
		if err != nil || res2.Rotated != rep.Previous || res2.Failed != 0 {
			t.Errorf("second rotate: rotated %d, failed %d, %v; want %d rotated, none failed",
				res2.Rotated, res2.Failed, isoShown(err), rep.Previous)
		}
		t.Logf("round %d: first rotate %d rotated, %d skipped, %d failed (row kept changing); "+
			"%d rows under the old key afterwards", round, res.Rotated, res.Skipped, res.Failed,
			rep.Previous)
		concCheckTable(t, f, pool, newOnly, want, fmt.Sprintf("round %d", round))
	}
}

// concCheckRotation checks the result of a rotation that ran with writers.
// New-key writers can make no row fail; old-key writers can make one fail
// with ErrChanged only, which the second run picks up.
func concCheckRotation(t *testing.T, res rotation.Result, oldWriters int) {
	t.Helper()
	for _, fl := range res.Failures {
		if oldWriters == 0 || !errors.Is(fl.Err, rotation.ErrChanged) {
			t.Errorf("rotation failed row %d (%v): %v", fl.ID, isoNameOf(fl.Name), isoShown(fl.Err))
		}
	}
	if int64(len(res.Failures)) != res.Failed {
		t.Errorf("rotation lists %d failures of %d", len(res.Failures), res.Failed)
	}
}

// TestConcurrentWritersThroughRotation attacks the compare-and-swap of
// rotation: writers that run with the new keyring (new current, old
// previous) set, delete and set-many their own names while Rotate moves
// the table in batches of 4. Every row must end up under the new key
// alone, holding the last write acknowledged for it.
func TestConcurrentWritersThroughRotation(t *testing.T) {
	concRotateWithWriters(t, 0)
}

// TestConcurrentOldKeyWritersThroughRotation is the same with half of the
// writers still on the old key alone, as an app instance not yet
// redeployed: rows they write after the rotation passed stay under the old
// key. Verify must count them as previous, not unreadable, and a second
// Rotate must finish them; nothing is lost.
func TestConcurrentOldKeyWritersThroughRotation(t *testing.T) {
	concRotateWithWriters(t, 3)
}

// concBuildCLI builds the sqlsecrets command into a temporary directory.
func concBuildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sqlsecrets")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/sqlsecrets")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/sqlsecrets: %v\n%s", isoShown(err), out)
	}
	return bin
}

// concEnv returns the environment for the command: this process's, less
// any database or key variable, plus the given ones.
func concEnv(vars ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "DATABASE_URL", secrets.EnvKey, secrets.EnvPreviousKeys:
			continue
		}
		env = append(env, kv)
	}
	return append(env, vars...)
}

// concRotateJSON is what `sqlsecrets rotate --json` prints.
type concRotateJSON struct {
	Rotated, Skipped, Failed int64
	Failures                 []json.RawMessage
}

// TestConcurrentRotateTwoProcesses attacks rotation from two processes at
// once: two `sqlsecrets rotate --batch 7 --json` on the same table. Each
// row must be rotated by exactly one of them (the sum of their rotated
// counts equals the rows that needed it), none fail, and every row reads
// under the new key alone afterwards.
func TestConcurrentRotateTwoProcesses(t *testing.T) {
	f := kind(concKind)
	url, pool := pgtest.Migrated(t)
	bin := concBuildCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), concTimeout)
	defer cancel()

	const stale, fresh = 420, 35 // rows under the old key, and already under the new
	overlapped := 0
	for round := range scale(3, 10) {
		f.cases.Add(1)
		concTruncate(t, pool)
		oldKey, newKey := isoMasterKey(), isoMasterKey()
		newOnly := isoRing(t, newKey)
		want := concSeedRows(ctx, t, f, pool, isoRing(t, oldKey), round, 0, stale)
		for n, v := range concSeedRows(ctx, t, f, pool, newOnly, round, stale, fresh) {
			want[n] = v
		}

		env := concEnv("DATABASE_URL="+url, secrets.EnvKey+"="+newKey,
			secrets.EnvPreviousKeys+"="+oldKey)
		var results [2]concRotateJSON
		var spans [2][2]time.Time // when each process started and ended
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() {
				spans[i][0] = time.Now()
				results[i] = concRunRotate(ctx, t, f, bin, env)
				spans[i][1] = time.Now()
			})
		}
		wg.Wait()

		a, b := results[0], results[1]
		if a.Rotated+b.Rotated != stale || a.Failed+b.Failed != 0 {
			t.Errorf("round %d: rotated %d + %d, failed %d + %d; want %d rotated in all, "+
				"none failed", round, a.Rotated, b.Rotated, a.Failed, b.Failed, stale)
		}
		for i, r := range results {
			if r.Rotated+r.Skipped+r.Failed != stale+fresh {
				t.Errorf("round %d, process %d looked at %d rows, want %d", round, i,
					r.Rotated+r.Skipped+r.Failed, stale+fresh)
			}
		}
		if spans[0][0].Before(spans[1][1]) && spans[1][0].Before(spans[0][1]) {
			overlapped++
		}
		t.Logf("round %d: rotated %d and %d, in %v and %v", round, a.Rotated, b.Rotated,
			spans[0][1].Sub(spans[0][0]).Round(time.Millisecond),
			spans[1][1].Sub(spans[1][0]).Round(time.Millisecond))
		concCheckTable(t, f, pool, newOnly, want, fmt.Sprintf("round %d", round))
	}
	t.Logf("%d of %d rounds had both processes running at once", overlapped, scale(3, 10))
}

// concSeedRows writes n secrets, numbered from first, with ring and
// returns their values by name.
func concSeedRows(ctx context.Context, t *testing.T, f *figures, pool *pgxpool.Pool,
	ring *secrets.Keyring, round, first, n int) map[isoName]string {
	t.Helper()
	scopes := []isoScope{{group: "global"}, {group: "users", owner: 0, hasOwner: true},
		{group: "a/1"}, {group: "a", owner: 1, hasOwner: true}, {group: "orgs", owner: 7,
			hasOwner: true}}
	want := map[isoName]string{}
	var entries []secrets.Entry
	for i := first; i < first+n; i++ {
		name := isoName{scopes[i%len(scopes)], fmt.Sprintf("r%d-k%d", round, i)}
		v := concValue(i, 0, round)
		want[name] = v
		entries = append(entries, secrets.Entry{Name: name.secretsName(), Value: v})
	}
	f.operations.Add(1)
	err := secrets.SetMany(ctx, pool, ring, entries)
	concLeak(t, f, "seed", err)
	if err != nil {
		t.Fatalf("seed: %v", isoShown(err))
	}
	return want
}

// concRunRotate runs `sqlsecrets rotate --batch 7 --json` and returns what
// it printed. A failed run fails the test.
func concRunRotate(ctx context.Context, t *testing.T, f *figures, bin string,
	env []string) concRotateJSON {
	t.Helper()
	f.operations.Add(1)
	cmd := exec.CommandContext(ctx, bin, "rotate", "--batch", "7", "--json")
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	checkLeaks(t, f, "rotate stdout", stdout.String())
	checkLeaks(t, f, "rotate stderr", stderr.String())
	if err != nil {
		t.Errorf("sqlsecrets rotate: %v; stderr:\n%s", isoShown(err), isoShownText(stderr.String()))
	}
	var res concRotateJSON
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Errorf("sqlsecrets rotate --json printed no JSON object: %v", isoShown(err))
	}
	return res
}

// TestConcurrentRotateOneConnPool attacks connection handling: Rotate and
// Verify run on a pool of one connection while the application reads and
// writes through the same pool, and reads again from inside the progress
// callback. Nothing may deadlock: the scenario runs under a timeout.
func TestConcurrentRotateOneConnPool(t *testing.T) {
	f := kind(concKind)
	url, big := pgtest.Migrated(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("parse the test database URL: %v", isoShown(err))
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open a pool of one connection: %v", isoShown(err))
	}
	defer pool.Close()

	for round := range scale(2, 10) {
		f.cases.Add(1)
		concTruncate(t, big)
		oldKey, newKey := isoMasterKey(), isoMasterKey()
		newRing := isoRing(t, newKey, oldKey)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		want := concSeedRows(ctx, t, f, big, isoRing(t, oldKey), round, 0, 200)
		concOneConnRound(ctx, t, f, pool, newRing, want)
		expired := ctx.Err() != nil
		cancel()
		if expired {
			t.Fatalf("round %d: rotation and reads on a one-connection pool did not finish "+
				"within 60s: deadlock", round)
		}
		concCheckTable(t, f, big, isoRing(t, newKey), want, fmt.Sprintf("round %d", round))
	}
}

// concOneConnRound runs one rotation and one verify on pool while readers
// and a writer use it too; it adds the writer's last writes to want.
func concOneConnRound(ctx context.Context, t *testing.T, f *figures, pool *pgxpool.Pool,
	ring *secrets.Keyring, want map[isoName]string) {
	t.Helper()
	names := slices.Collect(func(yield func(isoName) bool) {
		for n := range want {
			if !yield(n) {
				return
			}
		}
	})
	var reads atomic.Int64
	read := func(rng *mrand.Rand) {
		n := names[rng.IntN(len(names))]
		f.operations.Add(1)
		got, err := secrets.GetAs[string](ctx, n.store(ring), pool, n.key)
		concLeak(t, f, "get", err)
		if err != nil || got != want[n] {
			if ctx.Err() == nil {
				t.Errorf("get %v during rotation: wrong value or %v", n, isoShown(err))
			}
			return
		}
		reads.Add(1)
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-done:
					return
				default:
					read(rng)
				}
			}
		})
	}
	own := isoName{isoScope{group: "app"}, "writer"}
	var last string
	wg.Go(func() {
		for seq := 0; ; seq++ {
			select {
			case <-done:
				return
			default:
			}
			v := concValue(0, 99, seq)
			f.operations.Add(1)
			err := own.store(ring).Set(ctx, pool, own.key, v)
			concLeak(t, f, "set", err)
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("set %v during rotation: %v", own, isoShown(err))
				}
				return
			}
			last = v
		}
	})

	rng := mrand.New(mrand.NewPCG(7, 7))
	opts := rotation.Options{BatchSize: 5, Progress: func(rotation.Progress) { read(rng) }}
	f.operations.Add(2)
	res, err := rotation.Rotate(ctx, pool, ring, opts)
	concLeak(t, f, "rotate", err)
	if err != nil || res.Failed != 0 {
		t.Errorf("rotate on a one-connection pool: %d failed, %v", res.Failed, isoShown(err))
	}
	rep, err := rotation.Verify(ctx, pool, ring, opts)
	concLeak(t, f, "verify", err)
	if err != nil || rep.Unreadable != 0 {
		f.unread(t, rep.Unreadable, "verify on a one-connection pool: "+isoShown(err))
	}
	close(done)
	wg.Wait()
	if last != "" {
		want[own] = last
	}
	t.Logf("rotated %d rows with %d reads through the same one-connection pool",
		res.Rotated, reads.Load())
}

// TestConcurrentSetManyLockOrder attacks the order in which multi-row
// writes lock rows. Two SetMany calls over the same names in opposite
// orders, and SetMany calls running through a rotation's batches, must
// all succeed: a deadlock that PostgreSQL breaks by failing one of them is
// a failed application write or a stopped rotation. It stops at the first
// deadlock, since PostgreSQL takes deadlock_timeout (1s) to see each.
func TestConcurrentSetManyLockOrder(t *testing.T) {
	f := kind(concKind)
	_, pool := pgtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), concTimeout)
	defer cancel()

	t.Run("opposite orders", func(t *testing.T) {
		f.cases.Add(1)
		ring := isoRing(t, isoMasterKey())
		names := concNames([]isoScope{{group: "global"}, {group: "users", owner: 0,
			hasOwner: true}}, []string{"a", "b", "c", "d"})
		index := map[isoName]int{}
		for i, n := range names {
			index[n] = i
		}
		written := newConcWritten(len(names))
		var failed atomic.Bool
		for seq := 0; seq < scale(200, 5) && !failed.Load(); seq++ {
			start := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 2 {
				order := slices.Clone(names)
				if w == 1 {
					slices.Reverse(order)
				}
				var entries []secrets.Entry
				for _, n := range order {
					v := concValue(index[n], w, seq)
					written.add(index[n], v)
					entries = append(entries, secrets.Entry{Name: n.secretsName(), Value: v})
				}
				wg.Go(func() {
					<-start
					f.operations.Add(1)
					err := secrets.SetMany(ctx, pool, ring, entries)
					concLeak(t, f, "setmany", err)
					if err != nil && !failed.Swap(true) {
						t.Errorf("write %d: SetMany of the same %d names in opposite orders: %v",
							seq, len(names), isoShown(err))
					}
				})
			}
			close(start)
			wg.Wait()
		}
		concCheckWritten(ctx, t, f, pool, ring, index, written, true)
	})

	t.Run("through rotation", func(t *testing.T) {
		for round := 0; round < scale(10, 4) && !t.Failed(); round++ {
			f.cases.Add(1)
			concTruncate(t, pool)
			concLockOrderRound(ctx, t, f, pool, round)
		}
	})
}

// concLockOrderRound rotates 60 rows in batches of 30 while a goroutine
// sets 20 of them at a time with SetMany, in random orders.
func concLockOrderRound(ctx context.Context, t *testing.T, f *figures, pool *pgxpool.Pool,
	round int) {
	t.Helper()
	oldKey, newKey := isoMasterKey(), isoMasterKey()
	ring := isoRing(t, newKey, oldKey)
	seeded := concSeedRows(ctx, t, f, pool, isoRing(t, oldKey), round, 0, 60)
	index := map[isoName]int{}
	var names []isoName
	written := newConcWritten(len(seeded))
	for n, v := range seeded {
		index[n] = len(names)
		written.add(len(names), v)
		names = append(names, n)
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 1 {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(w), uint64(round)))
			for seq := 0; ; seq++ {
				select {
				case <-done:
					return
				default:
				}
				var entries []secrets.Entry
				for _, i := range rng.Perm(len(names))[:20] {
					v := concValue(i, w, seq)
					written.add(i, v)
					entries = append(entries, secrets.Entry{Name: names[i].secretsName(), Value: v})
				}
				f.operations.Add(1)
				err := secrets.SetMany(ctx, pool, ring, entries)
				concLeak(t, f, "setmany", err)
				if err != nil {
					t.Errorf("round %d: SetMany during rotation: %v", round, isoShown(err))
					return
				}
			}
		})
	}
	f.operations.Add(1)
	res, err := rotation.Rotate(ctx, pool, ring, rotation.Options{BatchSize: 30})
	close(done)
	wg.Wait()
	concLeak(t, f, "rotate", err)
	if err != nil {
		t.Errorf("round %d: rotation with SetMany writers stopped: %v", round, isoShown(err))
	}

	// Whatever happened, a second run finishes, and nothing is lost.
	f.operations.Add(1)
	if _, err := rotation.Rotate(ctx, pool, ring, rotation.Options{}); err != nil {
		t.Fatalf("round %d: second rotation: %v", round, isoShown(err))
	}
	concCheckWritten(ctx, t, f, pool, isoRing(t, newKey), index, written, true)
	t.Logf("round %d: rotated %d, skipped %d", round, res.Rotated, res.Skipped)
}
