package reliability_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sqlsecrets/sqlsecrets/importer"
	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/schema"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// The "failures" kind: a rotation whose server connection is killed or
// whose context is cancelled partway, an import whose server is stopped
// and restarted under it, and several processes migrating one database at
// once. After each, a rerun must finish the job with no row lost,
// duplicated or unreadable.

// fltKind is the name of this file's kind in the figures.
const fltKind = "failures"

// fltRecord is one secret of a test: its name and the JSON text of its
// value, exactly as it must read back.
type fltRecord struct {
	name secrets.Name
	json string
}

// fltRecords returns n records with distinct names, in every kind of
// scope: no owner, owner 0, other owners, several groups. Names depend on
// i only, so two calls with different tags name the same secrets. Every
// value holds tag, a registered secret, so that the leak watch catches any
// value, whole or in part, without registering thousands of needles.
func fltRecords(n int, tag string) []fltRecord {
	recs := make([]fltRecord, n)
	for i := range recs {
		name := secrets.Name{Group: secrets.DefaultGroup, Key: fmt.Sprintf("k%05d", i)}
		owner := int64(i)
		switch i % 4 {
		case 1:
			name.Group, name.Owner = "users", &owner
		case 2:
			zero := int64(0)
			name.Group, name.Owner = "teams", &zero
		case 3:
			owner %= 7
			name.Owner = &owner
		}
		var v string
		switch i % 3 {
		case 0:
			v = fmt.Sprintf(`"%s-%d"`, tag, i)
		case 1:
			v = fmt.Sprintf(`{"n":12345678901234567890,"token":"%s-%d"}`, tag, i)
		default:
			v = fmt.Sprintf(`["%s-%d",true,null,3.25,-1,9007199254740993]`, tag, i)
		}
		recs[i] = fltRecord{name: name, json: v}
	}
	return recs
}

// fltShow returns err's message for a failure message, with any
// registered secret in it replaced (see cliScrub).
func fltShow(err error) string { return cliScrub(fmt.Sprint(err)) }

// fltNameID is a map key for a name.
func fltNameID(n secrets.Name) string {
	owner := "-"
	if n.Owner != nil {
		owner = strconv.FormatInt(*n.Owner, 10)
	}
	return n.Group + "\x00" + owner + "\x00" + n.Key
}

// fltKey makes a random master key, registers it and returns its text.
func fltKey(t *testing.T) string {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return secretKey("base64:"+base64.StdEncoding.EncodeToString(raw), raw)
}

// fltRing builds a keyring, failing the test on error.
func fltRing(t *testing.T, current string, previous ...string) *secrets.Keyring {
	t.Helper()
	ring, err := secrets.NewKeyring(current, previous...)
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	return ring
}

// fltTag returns a new distinctive secret text, registered.
func fltTag(what string) string {
	return secretValue("s3cr3t-" + what + "-" + fltRandHex())
}

// fltRandHex returns 12 random hex digits.
func fltRandHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fltSeed stores recs with ring in one statement.
func fltSeed(t *testing.T, f *figures, db secrets.DBTX, ring *secrets.Keyring, recs []fltRecord) {
	t.Helper()
	entries := make([]secrets.Entry, len(recs))
	for i, r := range recs {
		entries[i] = secrets.Entry{Name: r.name, Value: json.RawMessage(r.json)}
	}
	f.operations.Add(1)
	if err := secrets.SetMany(t.Context(), db, ring, entries); err != nil {
		checkLeaks(t, f, "SetMany error", err.Error())
		t.Fatalf("seeding %d secrets: %v", len(recs), fltShow(err))
	}
}

// fltStored is one row of the secrets table.
type fltStored struct {
	id    int64
	name  secrets.Name
	value string
}

// fltReadTable reads every row of the secrets table, by name, and fails
// the test if two rows hold one name.
func fltReadTable(t *testing.T, db secrets.DBTX) (map[string]fltStored, int) {
	t.Helper()
	rows, err := db.Query(t.Context(), `SELECT id, key, "group", owner_id, value FROM secrets`)
	if err != nil {
		t.Fatalf("reading the table: %v", err)
	}
	defer rows.Close()
	out := map[string]fltStored{}
	n := 0
	for rows.Next() {
		var s fltStored
		err := rows.Scan(&s.id, &s.name.Key, &s.name.Group, &s.name.Owner, &s.value)
		if err != nil {
			t.Fatalf("reading the table: %v", err)
		}
		n++
		id := fltNameID(s.name)
		if _, dup := out[id]; dup {
			t.Errorf("two rows hold the secret %s", s.name)
		}
		out[id] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("reading the table: %v", err)
	}
	return out, n
}

// fltCheckAll checks that the table holds exactly recs, one row each, that
// every row opens with ring to its value, and, with current, that every
// row is under ring's current key. It counts lost and unreadable rows.
func fltCheckAll(t *testing.T, f *figures, db secrets.DBTX, ring *secrets.Keyring,
	recs []fltRecord, current bool) {
	t.Helper()
	table, n := fltReadTable(t, db)
	var distinct int
	err := db.QueryRow(t.Context(),
		`SELECT count(*) FROM (SELECT DISTINCT key, "group", owner_id FROM secrets) AS d`).
		Scan(&distinct)
	if err != nil {
		t.Fatalf("counting names: %v", err)
	}
	if n != len(recs) || distinct != len(recs) {
		t.Errorf("the table holds %d rows with %d distinct names, want %d of each",
			n, distinct, len(recs))
	}
	lost, unreadable, stale := fltCompare(t, f, ring, recs, table, len(recs), current)
	if lost > 0 {
		f.lose(t, lost, "missing or holding another value than was stored")
	}
	if unreadable > 0 {
		f.unread(t, unreadable, "do not open with the keyring that should open them")
	}
	if stale > 0 {
		t.Errorf("%d rows are not under the current key after a finished rotation", stale)
	}
}

// fltCompare compares the first upTo records with the rows in table and
// returns how many are missing or wrong, unreadable, and (with current)
// not under the current key.
func fltCompare(t *testing.T, f *figures, ring *secrets.Keyring, recs []fltRecord,
	table map[string]fltStored, upTo int, current bool) (lost, unreadable, stale int64) {
	t.Helper()
	for i, r := range recs[:upTo] {
		s, ok := table[fltNameID(r.name)]
		if !ok {
			lost++
			continue
		}
		pt, isCurrent, err := ring.Open(r.name, s.value)
		f.operations.Add(1)
		if err != nil {
			checkLeaks(t, f, "Open error", err.Error())
			unreadable++
			continue
		}
		if string(pt) != r.json {
			t.Errorf("record %d (%s) reads back %d bytes, not the %d stored",
				i, r.name, len(pt), len(r.json))
			lost++
		}
		if current && !isCurrent {
			stale++
		}
	}
	return lost, unreadable, stale
}

// fltSpotGet reads a few records through the public Get path as well.
func fltSpotGet(t *testing.T, f *figures, db secrets.DBTX, ring *secrets.Keyring,
	recs []fltRecord, count int) {
	t.Helper()
	step := max(1, len(recs)/count)
	for i := 0; i < len(recs); i += step {
		r := recs[i]
		s := secrets.New(ring).Group(r.name.Group)
		if r.name.Owner != nil {
			s = s.Owner(*r.name.Owner)
		}
		f.operations.Add(1)
		got, err := s.GetJSON(t.Context(), db, r.name.Key)
		if err != nil {
			checkLeaks(t, f, "GetJSON error", err.Error())
			if errors.Is(err, secrets.ErrIntegrity) {
				f.unread(t, 1, fmt.Sprintf("Get of record %d: %v", i, fltShow(err)))
			} else {
				f.lose(t, 1, fmt.Sprintf("Get of record %d: %v", i, fltShow(err)))
			}
			continue
		}
		if string(got) != r.json {
			f.lose(t, 1, fmt.Sprintf("Get of record %d returns another value", i))
		}
	}
}

// fltSlowWrites makes every row that an UPDATE writes cost ms
// milliseconds, so that a fault injected during a rotation lands inside
// its write statement rather than between statements.
func fltSlowWrites(t *testing.T, db secrets.DBTX, ms float64) {
	t.Helper()
	_, err := db.Exec(t.Context(), fmt.Sprintf(`
		CREATE FUNCTION reliability_slow_update() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(%g); RETURN NEW; END $$;
		CREATE TRIGGER reliability_slow_update BEFORE UPDATE ON secrets
		FOR EACH ROW EXECUTE FUNCTION reliability_slow_update();`, ms/1000))
	if err != nil {
		t.Fatalf("installing the slow-write trigger: %v", err)
	}
}

// fltDB is the handle a rotation runs over: one pgx.Conn or a pool, with
// an application_name of its own so that its backends can be found.
type fltDB struct {
	url, app string
	conn     *pgx.Conn
	pool     *pgxpool.Pool
}

func fltOpen(t *testing.T, url, app string, usePool bool) *fltDB {
	t.Helper()
	d := &fltDB{url: url, app: app}
	if usePool {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			t.Fatal("parsing the test URL failed")
		}
		cfg.ConnConfig.RuntimeParams["application_name"] = app
		cfg.MaxConns = 3
		if d.pool, err = pgxpool.NewWithConfig(t.Context(), cfg); err != nil {
			t.Fatalf("opening a pool: %v", err)
		}
		t.Cleanup(d.pool.Close)
		return d
	}
	d.reconnect(t)
	return d
}

// reconnect opens a new connection when the one held was closed, as an
// application would after losing it. A pool closes the connections it
// holds, idle ones too: a kill may have ended their backends.
func (d *fltDB) reconnect(t *testing.T) {
	t.Helper()
	if d.pool != nil {
		d.pool.Reset()
		return
	}
	if d.conn != nil && !d.conn.IsClosed() {
		return
	}
	cfg, err := pgx.ParseConfig(d.url)
	if err != nil {
		t.Fatal("parsing the test URL failed")
	}
	cfg.RuntimeParams["application_name"] = d.app
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	d.conn = conn
	t.Cleanup(func() { conn.Close(context.Background()) })
}

func (d *fltDB) handle() secrets.DBTX {
	if d.pool != nil {
		return d.pool
	}
	return d.conn
}

func (d *fltDB) String() string {
	if d.pool != nil {
		return "pool"
	}
	return "conn"
}

// fltKill terminates backends of application app from the admin handle.
// With busyWrite it waits, up to a few seconds, for one that is running
// the rotation's UPDATE and kills that one; otherwise it kills every
// backend of app at once, whatever it is doing. It returns how many it
// killed and what the first was doing.
func fltKill(ctx context.Context, admin secrets.DBTX, app string,
	busyWrite bool) (int, string, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		rows, err := admin.Query(ctx, `SELECT pid, coalesce(state, ''), left(query, 200)
			FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()`, app)
		if err != nil {
			return 0, "", err
		}
		var pids []int32
		what := ""
		for rows.Next() {
			var pid int32
			var state, query string
			if err := rows.Scan(&pid, &state, &query); err != nil {
				rows.Close()
				return 0, "", err
			}
			busy := state == "active" && strings.Contains(query, "name: SwapValues")
			if busyWrite && !busy && time.Now().Before(deadline) {
				continue
			}
			if what == "" {
				what = state
				if busy {
					what = "active in the write"
				}
			}
			pids = append(pids, pid)
		}
		rows.Close()
		if len(pids) > 0 {
			killed := 0
			for _, pid := range pids {
				var ok bool
				if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).
					Scan(&ok); err != nil {
					return killed, what, err
				}
				if ok {
					killed++
				}
				if busyWrite {
					break
				}
			}
			return killed, what, nil
		}
		if time.Now().After(deadline.Add(time.Second)) {
			return 0, "", errors.New("no backend of the rotation found")
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// fltStopped checks the error of a rotation that was stopped partway: a
// *rotation.StoppedError whose counts match the result and the table. It
// returns the error, or nil when err is not one.
func fltStopped(t *testing.T, f *figures, what string, err error, res rotation.Result,
	batch int, total int64) *rotation.StoppedError {
	t.Helper()
	checkLeaks(t, f, what+" error", err.Error())
	checkLeaks(t, f, what+" formatted error", formatted(err))
	checkLeaks(t, f, what+" formatted result", formatted(res))
	var se *rotation.StoppedError
	if !errors.As(err, &se) {
		t.Errorf("%s: the error is a %T, not a *rotation.StoppedError that says how far "+
			"the run got: %v", what, err, fltShow(err))
		return nil
	}
	if se.Err == nil || strings.HasSuffix(err.Error(), ": <nil>") {
		t.Errorf("%s: the error does not say what stopped the run: %v", what, fltShow(err))
	}
	says := fmt.Sprintf("stopped after %d rows", se.Done)
	if se.Done == 0 {
		says = "stopped before the first batch"
	}
	if !strings.Contains(err.Error(), says) {
		t.Errorf("%s: the message does not say how far the run got: %v", what, fltShow(err))
	}
	// Whole batches: the last, shorter one may be among them.
	if rest := se.Done % int64(batch); se.Done < 0 || se.Done > total ||
		(rest != 0 && rest != total%int64(batch)) {
		t.Errorf("%s: stopped after %d rows of %d in batches of %d", what, se.Done, total, batch)
	}
	if got := res.Rotated + res.Skipped + res.Failed; got != se.Done {
		t.Errorf("%s: the result counts %d rows (rotated %d, skipped %d, failed %d), "+
			"but the run stopped after looking at %d", what, got, res.Rotated, res.Skipped,
			res.Failed, se.Done)
	}
	return se
}

// fltCheckPoint checks that every row up to the id where a stopped run
// says it got is under the current key, and that the rows under it, up to
// that id and past it (where batches written alongside may have finished),
// are at least as many as the run says it looked at, those up to the id
// no more. With exact, they are exactly as many: nothing else was written.
func fltCheckPoint(t *testing.T, f *figures, db secrets.DBTX, ringNew *secrets.Keyring,
	se *rotation.StoppedError, exact bool) {
	t.Helper()
	table, _ := fltReadTable(t, db)
	var upTo, notDone, written int64
	for _, s := range table {
		_, current, err := ringNew.Open(s.name, s.value)
		f.operations.Add(1)
		done := err == nil && current
		if s.id <= se.AfterID {
			upTo++
			if !done {
				notDone++
			}
		} else if done {
			written++
		}
	}
	if upTo > se.Done || upTo+written < se.Done || (exact && upTo+written != se.Done) {
		t.Errorf("%d rows up to id %d and %d past it are under the new key, where the run "+
			"says it looked at %d rows", upTo, se.AfterID, written, se.Done)
	}
	if notDone > 0 {
		t.Errorf("%d rows up to id %d, which the stopped run reports done, are not under "+
			"the new key", notDone, se.AfterID)
	}
}

// TestFailuresKillMidRotation kills the server connection of a running
// rotation with pg_terminate_backend from another connection, over a
// single pgx.Conn and over a pool, in its write statement or wherever it
// is, and sometimes again during the rerun. Rotate must return a
// *rotation.StoppedError that says how far it got and holds to it, a rerun
// must finish, and every row must read back exactly under the new key.
func TestFailuresKillMidRotation(t *testing.T) {
	t.Parallel()
	f := kind(fltKind)
	rounds := scale(2, 8)
	for _, usePool := range []bool{false, true} {
		for r := range rounds {
			via := map[bool]string{false: "conn", true: "pool"}[usePool]
			t.Run(fmt.Sprintf("%s/%d", via, r), func(t *testing.T) {
				t.Parallel()
				fltKillRound(t, f, usePool, r)
			})
		}
	}
}

func fltKillRound(t *testing.T, f *figures, usePool bool, round int) {
	url, admin := pgtest.Migrated(t)
	const n = 240
	batch := 12 + 4*(round%3)
	rng := mrand.New(mrand.NewPCG(uint64(round), 0x6b696c6c))
	f.cases.Add(1)

	oldKey, newKey := fltKey(t), fltKey(t)
	ring, ringNew := fltRing(t, newKey, oldKey), fltRing(t, newKey)
	recs := fltRecords(n, fltTag("kill"))
	fltSeed(t, f, admin, fltRing(t, oldKey), recs)
	fltSlowWrites(t, admin, 1)

	app := "reliability-kill-" + fltRandHex()
	d := fltOpen(t, url, app, usePool)

	// Kill the first run; kill the second too in odd rounds, with a batch
	// size that does not line up with the first one's.
	kills := 1 + round%2
	for k := 0; k < kills; k++ {
		b := batch + 5*k
		batches := (n + b - 1) / b
		at := 1 + rng.IntN(max(1, batches-3))
		busyWrite := round%2 == 0
		if k > 0 {
			// The rerun skips the rows done before: kill its first write.
			at, busyWrite = 1, true
		}
		what := fmt.Sprintf("run %d over a %s, batch %d, kill after %d batches", k+1, d, b, at)
		if busyWrite {
			what += " inside the write"
		} else {
			what += " at once"
		}

		trigger := make(chan struct{})
		type killed struct {
			n     int
			state string
			err   error
		}
		done := make(chan killed, 1)
		go func() {
			select {
			case <-trigger:
			case <-t.Context().Done():
				done <- killed{err: errors.New("test ended")}
				return
			}
			kn, state, err := fltKill(context.Background(), admin, app, busyWrite)
			done <- killed{kn, state, err}
		}()
		calls := 0
		f.operations.Add(1)
		res, err := rotation.Rotate(t.Context(), d.handle(), ring, rotation.Options{
			BatchSize: b,
			Progress: func(rotation.Progress) {
				if calls++; calls == at {
					close(trigger)
				}
			},
		})
		if calls < at {
			close(trigger)
		}
		kl := <-done
		if kl.err != nil || kl.n == 0 {
			t.Fatalf("%s: no backend was killed: %v", what, kl.err)
		}
		f.faults.Add(int64(kl.n))
		t.Logf("%s: killed %d backends, the first %s", what, kl.n, kl.state)
		if err == nil {
			if kl.state == "active in the write" {
				t.Errorf("%s: Rotate returned no error although its write was killed", what)
			} else {
				t.Logf("%s: the kill landed after the run had finished", what)
			}
			d.reconnect(t)
			continue
		}
		if se := fltStopped(t, f, what, err, res, b, n); se != nil {
			fltCheckPoint(t, f, admin, ringNew, se, false)
		}
		d.reconnect(t)
	}

	// The rerun finishes the job.
	f.operations.Add(1)
	res, err := rotation.Rotate(t.Context(), d.handle(), ring, rotation.Options{BatchSize: batch})
	if err != nil {
		checkLeaks(t, f, "rerun error", err.Error())
		t.Fatalf("the rerun after the kill failed: %v", fltShow(err))
	}
	checkLeaks(t, f, "rerun result", formatted(res))
	if res.Failed != 0 || res.Rotated+res.Skipped != n {
		t.Errorf("rerun: rotated %d, skipped %d, failed %d; want %d rows in all, none failed",
			res.Rotated, res.Skipped, res.Failed, n)
	}
	fltFinalCheck(t, f, admin, ringNew, recs)
}

// fltFinalCheck checks, after a finished rotation, that every record reads
// back exactly under the new key alone, and that Verify agrees.
func fltFinalCheck(t *testing.T, f *figures, db secrets.DBTX, ringNew *secrets.Keyring,
	recs []fltRecord) {
	t.Helper()
	fltCheckAll(t, f, db, ringNew, recs, true)
	fltSpotGet(t, f, db, ringNew, recs, 10)
	f.operations.Add(1)
	rep, err := rotation.Verify(t.Context(), db, ringNew, rotation.Options{})
	if err != nil {
		t.Fatalf("verify: %v", fltShow(err))
	}
	checkLeaks(t, f, "verify report", formatted(rep))
	want := rotation.Report{Total: int64(len(recs)), Current: int64(len(recs))}
	sameErr := cmp.Comparer(func(a, b error) bool { return a == b })
	if diff := cmp.Diff(want, rep, sameErr); diff != "" {
		t.Errorf("verify with the new key alone (-want +got):\n%s", diff)
	}
}

// TestFailuresCancelMidBatch cancels the context of a rotation at random
// points, over a conn or a pool, with fast or slow writes: before it
// starts, between batches, or in the middle of a query. Rotate must stop
// with a *rotation.StoppedError wrapping context.Canceled whose counts are
// exact (a batch it read is finished, nothing past it written), a rerun
// must rotate exactly the rest, and every row must read back exactly.
func TestFailuresCancelMidBatch(t *testing.T) {
	t.Parallel()
	f := kind(fltKind)
	seeds := scale(10, 16)
	for seed := range seeds {
		t.Run(strconv.Itoa(seed), func(t *testing.T) {
			t.Parallel()
			fltCancelRound(t, f, seed)
		})
	}
}

func fltCancelRound(t *testing.T, f *figures, seed int) {
	url, admin := pgtest.Migrated(t)
	rng := mrand.New(mrand.NewPCG(uint64(seed), 0x63616e63))
	n := 80 + rng.IntN(80)
	batch := 3 + rng.IntN(20)
	f.cases.Add(1)

	oldKey, newKey := fltKey(t), fltKey(t)
	ring, ringNew := fltRing(t, newKey, oldKey), fltRing(t, newKey)
	recs := fltRecords(n, fltTag("cancel"))
	fltSeed(t, f, admin, fltRing(t, oldKey), recs)
	if seed%3 != 0 {
		fltSlowWrites(t, admin, 0.3)
	}
	d := fltOpen(t, url, "reliability-cancel-"+fltRandHex(), seed%2 == 1)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var cancelled atomic.Bool
	cancelNow := func() {
		cancelled.Store(true)
		cancel()
	}
	batches := (n + batch - 1) / batch
	at := 1 + rng.IntN(batches)
	opts := rotation.Options{BatchSize: batch}
	var how string
	switch {
	case seed == 0:
		how = "cancelled before the start"
		cancelNow()
	case seed%4 == 0:
		how = fmt.Sprintf("cancelled in the progress callback of batch %d", at)
		calls := 0
		opts.Progress = func(rotation.Progress) {
			if calls++; calls == at {
				cancelNow()
			}
		}
	default:
		// Armed when the first batch is done, so that the cancel lands in
		// the batches; seed 0 shows what a cancel before them does.
		delay := time.Duration(rng.IntN(30_000)) * time.Microsecond
		how = fmt.Sprintf("cancelled %v after the first batch", delay)
		var timer *time.Timer
		opts.Progress = func(rotation.Progress) {
			if timer == nil {
				timer = time.AfterFunc(delay, cancelNow)
			}
		}
		defer func() {
			if timer != nil {
				timer.Stop()
			}
		}()
	}
	what := fmt.Sprintf("%d rows in batches of %d over a %s, %s", n, batch, d, how)

	f.operations.Add(1)
	first, err := rotation.Rotate(ctx, d.handle(), ring, opts)
	injected := cancelled.Load()
	if injected {
		f.faults.Add(1)
	}
	switch {
	case err == nil:
		// The run ended before the cancel: the rerun below skips everything.
		checkLeaks(t, f, what+" result", formatted(first))
		t.Logf("%s: the run finished first", what)
	case !injected:
		t.Fatalf("%s: Rotate failed before any cancel: %v", what, fltShow(err))
	default:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: the error does not say the run was cancelled: %v", what, fltShow(err))
		}
		if se := fltStopped(t, f, what, err, first, batch, int64(n)); se != nil {
			t.Logf("%s: stopped after %d rows", what, se.Done)
			fltCheckPoint(t, f, admin, ringNew, se, true)
		}
	}

	d.reconnect(t)
	f.operations.Add(1)
	second, err := rotation.Rotate(t.Context(), d.handle(), ring,
		rotation.Options{BatchSize: batch})
	if err != nil {
		checkLeaks(t, f, "rerun error", err.Error())
		t.Fatalf("%s: the rerun failed: %v", what, fltShow(err))
	}
	want := rotation.Result{Rotated: int64(n) - first.Rotated, Skipped: first.Rotated}
	if diff := cmp.Diff(want, second); diff != "" {
		t.Errorf("%s: the rerun did not rotate exactly what the first run left (-want +got):\n%s",
			what, diff)
	}
	fltFinalCheck(t, f, admin, ringNew, recs)
}

// fltImportLines returns recs as JSON Lines for importer.Import: an owner
// absent or null for secrets with none, the group left out when it is the
// default one for some of them.
func fltImportLines(recs []fltRecord) string {
	var b strings.Builder
	for i, r := range recs {
		b.WriteString("{")
		if r.name.Group != secrets.DefaultGroup || i%2 == 0 {
			fmt.Fprintf(&b, `"group":%q,`, r.name.Group)
		}
		switch {
		case r.name.Owner != nil:
			fmt.Fprintf(&b, `"owner":%d,`, *r.name.Owner)
		case i%3 == 0:
			b.WriteString(`"owner":null,`)
		}
		fmt.Fprintf(&b, `"key":%q,"value":%s}`+"\n", r.name.Key, r.json)
	}
	return b.String()
}

// writtenBefore matches the count that an import error reports.
var writtenBefore = regexp.MustCompile(`\((\d+) records written before this batch\)|` +
	`stopped after (\d+) records`)

// TestFailuresServerRestartDuringImport stops the PostgreSQL server of a
// throwaway cluster while importer.Import loads a few thousand records in
// small batches, with a fast shutdown and with an immediate (crash-like)
// one, then starts it again. The import must fail saying how many records
// it wrote, those must have survived, a rerun (upserts) must complete, and
// every record must read back exactly, once.
func TestFailuresServerRestartDuringImport(t *testing.T) {
	t.Parallel()
	f := kind(fltKind)
	for _, mode := range []string{"fast", "immediate"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			fltRestartImport(t, f, mode)
		})
	}
}

func fltRestartImport(t *testing.T, f *figures, mode string) {
	c := startCluster(t)
	pool, err := pgxpool.New(t.Context(), c.url)
	if err != nil {
		t.Fatalf("opening a pool on the throwaway cluster: %v", err)
	}
	defer pool.Close()
	db := stdlib.OpenDBFromPool(pool)
	if _, err := schema.Up(t.Context(), db); err != nil {
		t.Fatalf("migrating the throwaway cluster: %v", err)
	}
	db.Close()
	ring := fltRing(t, fltKey(t))

	const total = 2000
	offset := map[string]int{"fast": 0, "immediate": 1}[mode]
	for round := range scale(1, 6) {
		// Every other round, starting with the first immediate one,
		// imports new values over rows that exist: upserts, not inserts.
		switch overwrite := (round+offset)%2 == 1; {
		case !overwrite:
			if _, err := pool.Exec(t.Context(), "TRUNCATE secrets"); err != nil {
				t.Fatalf("emptying the table: %v", err)
			}
		case round == 0:
			fltSeed(t, f, pool, ring, fltRecords(total, fltTag("import-before")))
		}
		recs := fltRecords(total, fltTag("import-"+mode))
		batch := 20 + 10*round
		triggerAt := int64(total * (2 + round%3) / 10)
		what := fmt.Sprintf("round %d: %s stop after %d records, batches of %d",
			round, mode, triggerAt, batch)
		f.cases.Add(1)
		fltImportWithStop(t, f, c, pool, ring, recs, batch, triggerAt, mode, what)
	}
	checkLeaks(t, f, "server log", c.log())
}

func fltImportWithStop(t *testing.T, f *figures, c *pgCluster, pool *pgxpool.Pool,
	ring *secrets.Keyring, recs []fltRecord, batch int, triggerAt int64, mode, what string) {
	t.Helper()
	input := fltImportLines(recs)
	trigger := make(chan struct{})
	stopped := make(chan error, 1)
	go func() {
		select {
		case <-trigger:
			stopped <- c.stop(mode)
		case <-t.Context().Done():
			stopped <- errors.New("test ended")
		}
	}()
	var last int64
	triggered := false
	f.operations.Add(1)
	n, err := importer.Import(t.Context(), pool, ring, strings.NewReader(input), importer.Options{
		BatchSize: batch,
		Progress: func(written int64) {
			last = written
			switch {
			case triggered:
				// Slow down, so that the server goes before the input ends.
				time.Sleep(20 * time.Millisecond)
			case written >= triggerAt:
				triggered = true
				close(trigger)
			}
		},
	})
	if !triggered {
		close(trigger)
	}
	if serr := <-stopped; serr != nil {
		t.Fatalf("%s: %v\nserver log:\n%s", what, serr, cliScrub(c.log()))
	}
	f.faults.Add(1)
	if rerr := c.restart(); rerr != nil {
		t.Fatalf("%s: restarting: %v\nserver log:\n%s", what, rerr, cliScrub(c.log()))
	}
	// The pool's connections died with the server; an application's pool
	// would find that out one failed query at a time.
	pool.Reset()

	if err == nil {
		t.Fatalf("%s: the import of %d records succeeded although the server stopped under it",
			what, n)
	}
	checkLeaks(t, f, what+": import error", err.Error())
	checkLeaks(t, f, what+": formatted import error", formatted(err))
	t.Logf("%s: %v", what, fltShow(err))
	m := writtenBefore.FindStringSubmatch(err.Error())
	switch {
	case n != last || n >= int64(len(recs)):
		t.Errorf("%s: Import returned %d written, progress said %d, of %d", what, n, last,
			len(recs))
	case m == nil:
		t.Errorf("%s: the error does not say how many records were written: %v", what, fltShow(err))
	case m[1]+m[2] != strconv.FormatInt(n, 10):
		t.Errorf("%s: the error says %s records were written, Import returned %d",
			what, m[1]+m[2], n)
	}

	// What the import reported as written survived the stop.
	table, _ := fltReadTable(t, pool)
	lost, unreadable, _ := fltCompare(t, f, ring, recs, table, int(min(n, int64(len(recs)))), false)
	if lost > 0 {
		f.lose(t, lost, what+": records the import reported written did not survive the stop")
	}
	if unreadable > 0 {
		f.unread(t, unreadable, what+": records written before the stop do not open")
	}

	// The rerun completes. The pool may hand out a connection that died
	// with the server: an application retries, and so does this.
	for attempt := 1; ; attempt++ {
		f.operations.Add(1)
		n, err = importer.Import(t.Context(), pool, ring, strings.NewReader(input),
			importer.Options{BatchSize: batch})
		if err == nil {
			break
		}
		checkLeaks(t, f, what+": rerun error", err.Error())
		if attempt == 5 {
			t.Fatalf("%s: the rerun failed %d times: %v", what, attempt, fltShow(err))
		}
		t.Logf("%s: rerun %d failed, retrying: %v", what, attempt, fltShow(err))
	}
	if n != int64(len(recs)) {
		t.Errorf("%s: the rerun wrote %d records, want %d", what, n, len(recs))
	}
	fltCheckAll(t, f, pool, ring, recs, true)
	fltSpotGet(t, f, pool, ring, recs, 20)
}

// TestFailuresConcurrentMigrate runs `sqlsecrets migrate` in five
// processes at once on a fresh schema, from a working directory that holds
// decoy migration files, next to an application's own goose version
// table. All must succeed, exactly one must apply the migration, the table
// must be the embedded migration's, the decoys must not run, and the
// application's goose table must be untouched.
func TestFailuresConcurrentMigrate(t *testing.T) {
	t.Parallel()
	f := kind(fltKind)
	bin := buildCLI(t)
	for round := range scale(1, 5) {
		t.Run(strconv.Itoa(round), func(t *testing.T) {
			t.Parallel()
			fltConcurrentMigrate(t, f, bin)
		})
	}
}

func fltConcurrentMigrate(t *testing.T, f *figures, bin string) {
	url, pool := pgtest.NewURL(t)
	f.cases.Add(1)
	ctx := t.Context()
	_, err := pool.Exec(ctx, `
		CREATE TABLE goose_db_version (
			id serial PRIMARY KEY, version_id bigint NOT NULL,
			is_applied boolean NOT NULL, tstamp timestamp DEFAULT now());
		INSERT INTO goose_db_version (version_id, is_applied)
		VALUES (0, true), (20250101120000, true), (20250102120000, false);`)
	if err != nil {
		t.Fatalf("creating the application's goose table: %v", err)
	}
	before := fltGooseRows(t, pool)

	dir := t.TempDir()
	decoy := func(path, table string) {
		body := "-- +goose Up\nCREATE TABLE " + table + " (x int);\n" +
			"-- +goose Down\nDROP TABLE " + table + ";\n"
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	decoy("schema/00001_create_secrets.sql", "decoy_first")
	decoy("schema/00002_evil.sql", "decoy_evil")
	decoy("00001_create_secrets.sql", "decoy_root_first")
	decoy("00002_evil.sql", "decoy_root_evil")
	f.mutations.Add(4)

	const procs = 5
	runs := make([]cliRun, procs)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range runs {
		wg.Go(func() {
			<-start
			runs[i] = runCLI(t, bin, cliCall{env: []string{"DATABASE_URL=" + url}, dir: dir},
				"migrate")
		})
	}
	close(start)
	wg.Wait()
	f.operations.Add(procs)
	applied := 0
	for i, r := range runs {
		checkLeaks(t, f, "migrate stdout", r.stdout)
		checkLeaks(t, f, "migrate stderr", r.stderr)
		if r.code != 0 {
			t.Errorf("process %d: exit status %d, want 0; stderr:\n%s", i, r.code,
				cliScrub(r.stderr))
		}
		switch {
		case strings.HasPrefix(r.stdout, "applied 00001_create_secrets.sql ("):
			applied++
		case r.stdout == "nothing to apply: the schema is up to date\n":
		default:
			t.Errorf("process %d: unexpected output %q", i, cliScrub(r.stdout))
		}
	}
	if applied != 1 {
		t.Errorf("%d of %d processes applied the migration, want exactly 1", applied, procs)
	}

	tables := fltStrings(t, pool, `SELECT tablename::text FROM pg_tables
		WHERE schemaname = current_schema() ORDER BY 1`)
	wantTables := []string{"goose_db_version", "secrets", schema.VersionTable}
	if diff := cmp.Diff(wantTables, tables); diff != "" {
		t.Errorf("tables of the schema after five migrations (-want +got):\n%s", diff)
	}
	cols := fltStrings(t, pool, `SELECT column_name::text FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'secrets' ORDER BY 1`)
	wantCols := []string{"created_at", "group", "id", "key", "owner_id", "updated_at", "value"}
	if diff := cmp.Diff(wantCols, cols); diff != "" {
		t.Errorf("columns of the secrets table: not the embedded migration's (-want +got):\n%s",
			diff)
	}
	versions := fltStrings(t, pool, `SELECT version_id::text || ' ' || is_applied::text
		FROM `+schema.VersionTable+` WHERE version_id > 0 ORDER BY id`)
	if diff := cmp.Diff([]string{"1 true"}, versions); diff != "" {
		t.Errorf("applied migrations in %s (-want +got):\n%s", schema.VersionTable, diff)
	}
	if diff := cmp.Diff(before, fltGooseRows(t, pool)); diff != "" {
		t.Errorf("the application's goose_db_version changed (-before +after):\n%s", diff)
	}

	// Status, from the same directory, knows only the embedded migration.
	f.operations.Add(1)
	st := runCLI(t, bin, cliCall{env: []string{"DATABASE_URL=" + url}, dir: dir},
		"migrate", "status")
	checkLeaks(t, f, "migrate status stdout", st.stdout)
	checkLeaks(t, f, "migrate status stderr", st.stderr)
	if st.code != 0 || strings.Count(st.stdout, "\n") != 1 ||
		!strings.Contains(st.stdout, "00001_create_secrets.sql") {
		t.Errorf("migrate status: exit %d, output %q; want one applied migration",
			st.code, st.stdout)
	}
}

// fltGooseRows returns the rows of the application's goose table.
func fltGooseRows(t *testing.T, db secrets.DBTX) []string {
	t.Helper()
	return fltStrings(t, db, `SELECT id::text || ' ' || version_id::text || ' ' ||
		is_applied::text || ' ' || coalesce(tstamp::text, '-') FROM goose_db_version ORDER BY id`)
}

// fltStrings runs a query of one text column and returns its rows.
func fltStrings(t *testing.T, db secrets.DBTX, query string) []string {
	t.Helper()
	rows, err := db.Query(t.Context(), query)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	return out
}
