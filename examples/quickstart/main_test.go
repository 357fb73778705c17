package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
)

// TestQuickstart runs the whole tour on the sample records, in a schema of
// the test's own.
func TestQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 5,000 records")
	}
	_, pool := pgtest.NewURL(t)
	var out, errOut bytes.Buffer
	err := run(context.Background(), pool, "../../testdata/sample-secrets.jsonl", &out, &errOut)
	if err != nil {
		t.Fatalf("quickstart: %v", err)
	}
	for _, want := range []string{"import", "5000", "rotate", "verify", "all records read back exactly"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	if !strings.Contains(errOut.String(), "rotate: 5000/5000") {
		t.Errorf("no final rotation progress line")
	}
}
