package importer

import (
	"context"
	"strings"
	"testing"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

func TestAttack2ImportSurrogateCollision(t *testing.T) {
	_, pool := pgtest.Migrated(t)
	r, err := secrets.NewKeyring("0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	in := `{"key":"\ud800","value":"first"}` + "\n" + `{"key":"\udc00","value":"second"}` + "\n" +
		"{\"key\":\"k\xfe\",\"value\":1}\n"
	n, err := Import(context.Background(), pool, r, strings.NewReader(in), Options{})
	var rows int
	pool.QueryRow(context.Background(), `SELECT count(*) FROM secrets`).Scan(&rows)
	t.Logf("import wrote %d records, err %v; table holds %d rows", n, err, rows)
	if err == nil && rows != 3 {
		t.Errorf("3 distinct keys imported without error, %d rows in the table", rows)
	}
}
