package importer_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sqlsecrets/sqlsecrets/importer"
	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

const testKey = "0123456789abcdef0123456789abcdef"

func owner(id int64) *int64 { return &id }

func TestReader(t *testing.T) {
	in := `{"group": "users", "owner": 42, "key": "api_token", "value": "tok"}

{"key": "global_one", "value": {"n": 12345678901234567890}}
{"group": "orgs", "owner": null, "key": "k", "value": null}
{"group": "orgs", "owner": 0, "key": "zero", "value": []}
`
	want := []importer.Record{
		{Line: 1, Name: secrets.Name{Group: "users", Owner: owner(42), Key: "api_token"},
			Value: []byte(`"tok"`)},
		{Line: 3, Name: secrets.Name{Group: "global", Key: "global_one"},
			Value: []byte(`{"n": 12345678901234567890}`)},
		{Line: 4, Name: secrets.Name{Group: "orgs", Key: "k"}, Value: []byte(`null`)},
		{Line: 5, Name: secrets.Name{Group: "orgs", Owner: owner(0), Key: "zero"},
			Value: []byte(`[]`)},
	}
	var got []importer.Record
	r := importer.NewReader(strings.NewReader(in))
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		got = append(got, rec)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

func TestReaderSkipsByteOrderMark(t *testing.T) {
	r := importer.NewReader(strings.NewReader("\ufeff{\"key\":\"k\",\"value\":1}\n"))
	rec, err := r.Next()
	if err != nil || rec.Name.Key != "k" {
		t.Fatalf("a file starting with a byte order mark: %v", err)
	}
}

func TestReaderRejectsBadLines(t *testing.T) {
	const secret = "s3cr3t-never-in-errors"
	for _, tc := range []struct{ name, line string }{
		{"not json", `{"key": "k", "value": "` + secret},
		{"not an object", `["` + secret + `"]`},
		{"unknown field", `{"key": "k", "value": 1, "extra": "` + secret + `"}`},
		{"no key", `{"value": "` + secret + `"}`},
		{"no value", `{"key": "k"}`},
		{"owner not a number", `{"key": "k", "owner": "` + secret + `", "value": 1}`},
		{"owner fraction", `{"key": "k", "owner": 1.5, "value": "` + secret + `"}`},
		{"two objects", `{"key": "k", "value": 1} {"key": "` + secret + `", "value": 2}`},
		{"lone surrogate in key", `{"key": "\ud800` + secret + `", "value": 1}`},
		{"lone surrogate in group", `{"group": "\udc00", "key": "k", "value": "` + secret + `"}`},
		{"invalid UTF-8 in key", "{\"key\": \"k\xfe\", \"value\": \"" + secret + "\"}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := importer.NewReader(strings.NewReader("{\"key\":\"ok\",\"value\":1}\n" + tc.line + "\n"))
			if _, err := r.Next(); err != nil {
				t.Fatalf("first line: %v", err)
			}
			_, err := r.Next()
			var le *importer.LineError
			if !errors.As(err, &le) || le.Line != 2 || !errors.Is(err, importer.ErrBadLine) {
				t.Fatalf("got %v; want a LineError for line 2 matching ErrBadLine", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error quotes the line's content")
			}
		})
	}
}

func lines(n int, bad map[int]string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if l, ok := bad[i]; ok {
			b.WriteString(l + "\n")
			continue
		}
		b.WriteString(`{"group":"users","owner":` + strconv.Itoa(i) + `,"key":"k","value":` + strconv.Itoa(i) + "}\n")
	}
	return b.String()
}

func count(t *testing.T, db secrets.DBTX) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), "SELECT count(*) FROM secrets").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestImport(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	ring, err := secrets.NewKeyring(testKey)
	if err != nil {
		t.Fatal(err)
	}
	var reports []int64
	n, err := importer.Import(context.Background(), pool, ring, strings.NewReader(lines(25, nil)),
		importer.Options{BatchSize: 10, Progress: func(w int64) { reports = append(reports, w) }})
	if err != nil || n != 25 {
		t.Fatalf("import: %d, %v; want 25", n, err)
	}
	if diff := cmp.Diff([]int64{10, 20, 25}, reports); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	if got := count(t, pool); got != 25 {
		t.Errorf("%d rows, want 25", got)
	}
	v, err := secrets.GetAs[int](context.Background(), secrets.New(ring).Model("users", 17), pool, "k")
	if err != nil || v != 17 {
		t.Errorf("read back owner 17: %v, %v", v, err)
	}
}

// A bad line stops the import: the batches before it are written, nothing
// of its own batch is.
func TestImportStopsAtBadLineWithoutHalfBatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  string
	}{
		{"syntax", `{"key": "k", "value": `},
		{"invalid name", `{"group": "", "key": "k", "value": 1}`},
		{"negative owner", `{"owner": -3, "key": "k", "value": 1}`},
		{"invalid utf-8", "{\"key\": \"k\", \"value\": \"\xff\"}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, pool := pgtest.Migrated(t)
			ring, err := secrets.NewKeyring(testKey)
			if err != nil {
				t.Fatal(err)
			}
			in := lines(25, map[int]string{14: tc.bad})
			n, err := importer.Import(context.Background(), pool, ring, strings.NewReader(in),
				importer.Options{BatchSize: 10})
			var le *importer.LineError
			if !errors.As(err, &le) || le.Line != 14 {
				t.Fatalf("got %v; want an error naming line 14", err)
			}
			if n != 10 || count(t, pool) != 10 {
				t.Errorf("written %d, %d rows; want the first batch of 10 only", n, count(t, pool))
			}
		})
	}
}
