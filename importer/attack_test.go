package importer_test

// Attack tests: interrupted and restarted imports, hostile options and lines.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sqlsecrets/sqlsecrets/importer"
	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

func jsonl(n int, tag string) string {
	var b strings.Builder
	for i := range n {
		if i%2 == 0 {
			fmt.Fprintf(&b, `{"group":"g","owner":%d,"key":"k%d","value":"%s-%d"}`+"\n", i%3, i, tag, i)
		} else {
			fmt.Fprintf(&b, `{"key":"k%d","value":"%s-%d"}`+"\n", i, tag, i)
		}
	}
	return b.String()
}

// killingDB terminates its own backend before the nth batch write.
type killingDB struct {
	*pgx.Conn
	admin  *pgx.Conn
	writes int
	killAt int
}

func (k *killingDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if strings.Contains(sql, "UpsertSecrets") {
		k.writes++
		if k.writes == k.killAt {
			k.admin.Exec(ctx, "SELECT pg_terminate_backend($1)", k.Conn.PgConn().PID())
		}
	}
	return k.Conn.Exec(ctx, sql, args...)
}

func TestAttackImportKilledAndRestarted(t *testing.T) {
	url, pool := pgtest.Migrated(t)
	ctx := context.Background()
	ring, err := secrets.NewKeyring(testKey)
	if err != nil {
		t.Fatal(err)
	}
	in := jsonl(50, "v")
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	db := &killingDB{Conn: conn, admin: admin, killAt: 3}
	n, err := importer.Import(ctx, db, ring, strings.NewReader(in), importer.Options{BatchSize: 10})
	if err == nil || n != 20 || !strings.Contains(err.Error(), "20 records written") {
		t.Errorf("killed at the third batch: n=%d err=%v; want 20 written and an error saying so", n, err)
	}
	// Restart from the beginning on a good connection: idempotent.
	n, err = importer.Import(ctx, pool, ring, strings.NewReader(in), importer.Options{BatchSize: 10})
	if err != nil || n != 50 {
		t.Fatalf("restart: %d, %v", n, err)
	}
	var rows int
	pool.QueryRow(ctx, "SELECT count(*) FROM secrets").Scan(&rows)
	if rows != 50 {
		t.Errorf("%d rows after restart, want 50", rows)
	}
	for i := range 50 {
		s := secrets.New(ring)
		if i%2 == 0 {
			s = s.Model("g", int64(i%3))
		}
		got, err := secrets.GetAs[string](ctx, s, pool, fmt.Sprintf("k%d", i))
		if err != nil || got != fmt.Sprintf("v-%d", i) {
			t.Errorf("record %d: %v", i, err)
		}
	}
}

func TestAttackImportCancelled(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ring, _ := secrets.NewKeyring(testKey)
	ctx, cancel := context.WithCancel(context.Background())
	var seen []int64
	n, err := importer.Import(ctx, pool, ring, strings.NewReader(jsonl(30, "v")), importer.Options{
		BatchSize: 7,
		Progress:  func(w int64) { seen = append(seen, w); cancel() },
	})
	if !errors.Is(err, context.Canceled) || n != 7 {
		t.Errorf("cancelled after the first batch: n=%d err=%v", n, err)
	}
	var rows int64
	pool.QueryRow(context.Background(), "SELECT count(*) FROM secrets").Scan(&rows)
	if rows != n {
		t.Errorf("%d rows written, import says %d", rows, n)
	}
}

// A huge batch size is allocated up front: the process dies with "fatal
// error: runtime: out of memory", which recover cannot catch. Run the call
// in a child process.
func TestAttackImportHugeBatchSize(t *testing.T) {
	if os.Getenv("ATTACK_HUGE_BATCH") != "" {
		ring, _ := secrets.NewKeyring(testKey)
		bs, _ := strconv.Atoi(os.Getenv("ATTACK_HUGE_BATCH"))
		_, err := importer.Import(context.Background(), nil, ring, strings.NewReader(""),
			importer.Options{BatchSize: bs})
		fmt.Println("returned:", err)
		return
	}
	for _, bs := range []int{1 << 40, 1 << 62} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAttackImportHugeBatchSize$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("ATTACK_HUGE_BATCH=%d", bs))
		out, err := cmd.CombinedOutput()
		if err != nil {
			first, _, _ := strings.Cut(string(out), "\n")
			t.Errorf("Import with BatchSize %d (empty input) crashed the process: %v: %s", bs, err, first)
		}
	}
}

// Lines that name the same field twice, or hostile owners.
func TestAttackImportAmbiguousLines(t *testing.T) {
	for _, tc := range []struct{ name, line string }{
		{"key twice", `{"key":"a","key":"b","value":1}`},
		{"value twice", `{"key":"a","value":1,"value":2}`},
		{"owner twice", `{"key":"a","owner":1,"owner":2,"value":1}`},
		{"group twice", `{"group":"a","group":"b","key":"k","value":1}`},
		{"Key in capitals", `{"KEY":"a","value":1}`},
		{"owner float", `{"key":"a","owner":1.0,"value":1}`},
		{"owner exponent", `{"key":"a","owner":1e2,"value":1}`},
		{"owner string", `{"key":"a","owner":"1","value":1}`},
		{"owner -0", `{"key":"a","owner":-0,"value":1}`},
	} {
		r := importer.NewReader(strings.NewReader(tc.line))
		rec, err := r.Next()
		if err == io.EOF {
			t.Errorf("%s: no record", tc.name)
			continue
		}
		t.Logf("%s: err=%v name=%s", tc.name, err, rec.Name)
	}
}
