package bench

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// Throughput is a number of rows done in a time.
type Throughput struct {
	Rows    int64
	Elapsed time.Duration
}

// PerSecond returns rows per second.
func (t Throughput) PerSecond() float64 { return float64(t.Rows) / t.Elapsed.Seconds() }

// KeysetBatch is the batch size of RotateKeyset, rotation's default.
const KeysetBatch = rotation.DefaultBatchSize

// PHPPage is the page size of RotatePHP, the PHP original's default.
const PHPPage = 500

// FloorSQL rewrites every row in one statement: it appends the empty
// string to every value.
const FloorSQL = "UPDATE secrets SET value = value || ''"

// RotateFloor is the floor of any rotation: FloorSQL, one server-side
// statement that rewrites every row. No value leaves the server and
// nothing is decrypted.
func (e *Env) RotateFloor(ctx context.Context) (Throughput, error) {
	start := time.Now()
	tag, err := e.Pool.Exec(ctx, FloorSQL)
	t := Throughput{Rows: tag.RowsAffected(), Elapsed: time.Since(start)}
	if err != nil {
		return t, fmt.Errorf("rotate floor: %w", err)
	}
	return t, e.checkRows("rotate floor", t.Rows)
}

// readBatchSQL reads what rotation reads: the same columns, keyset-paged.
const readBatchSQL = `SELECT id, key, "group", owner_id, value FROM secrets
WHERE id > $1 ORDER BY id LIMIT $2`

// writeBatchSQL writes a batch back in one statement.
const writeBatchSQL = `UPDATE secrets AS s SET value = u.value
FROM (SELECT unnest($1::bigint[]) AS id, unnest($2::text[]) AS value) AS u
WHERE s.id = u.id`

// RotateKeyset is rotation's access pattern without its crypto and its
// compare-and-swap: batches of batch rows by keyset on id, each read (the
// columns rotation reads) and written back unchanged with one UPDATE ...
// FROM unnest statement.
func (e *Env) RotateKeyset(ctx context.Context, batch int) (Throughput, error) {
	start := time.Now()
	var done int64
	after := int64(math.MinInt64)
	ids := make([]int64, 0, batch)
	values := make([]string, 0, batch)
	for {
		ids, values = ids[:0], values[:0]
		rows, err := e.Pool.Query(ctx, readBatchSQL, after, batch)
		if err != nil {
			return Throughput{}, fmt.Errorf("rotate keyset: %w", err)
		}
		var id int64
		var key, group, value string
		var owner *int64
		_, err = pgx.ForEachRow(rows, []any{&id, &key, &group, &owner, &value}, func() error {
			ids = append(ids, id)
			values = append(values, value)
			return nil
		})
		if err != nil {
			return Throughput{}, fmt.Errorf("rotate keyset: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		tag, err := e.Pool.Exec(ctx, writeBatchSQL, ids, values)
		if err != nil {
			return Throughput{}, fmt.Errorf("rotate keyset: %w", err)
		}
		done += tag.RowsAffected()
		after = ids[len(ids)-1]
	}
	t := Throughput{Rows: done, Elapsed: time.Since(start)}
	return t, e.checkRows("rotate keyset", t.Rows)
}

// phpPageSQL reads a page the way the PHP original does, by OFFSET.
const phpPageSQL = `SELECT id, key, "group", owner_id, value FROM secrets
ORDER BY id LIMIT $1 OFFSET $2`

// RotatePHP is the PHP original's algorithm: pages of pageSize rows by
// OFFSET and LIMIT, and for each row, opened with the old key and sealed
// with the new one, an UPDATE of its own, committed on its own (pgx's
// autocommit: one round trip per row, the cheapest way to commit each
// row). The crypto is sqlsecrets' own, so the comparison is of the
// algorithms, not of PHP and Go.
//
// It rotates only rows rows of the table, in pages spread evenly over the
// whole of it, so that the OFFSET pages skip on average as many rows as a
// run over the whole table would; that run, one commit per row, would
// take too long on a large table.
func (e *Env) RotatePHP(ctx context.Context, rows, pageSize int) (Throughput, error) {
	rows = min(rows, e.rows)
	pages := (rows + pageSize - 1) / pageSize
	stride := 0
	if pages > 1 {
		stride = (e.rows - pageSize) / (pages - 1)
	}
	start := time.Now()
	var done int64
	for p := range pages {
		limit := min(pageSize, rows-p*pageSize)
		n, err := e.phpPage(ctx, limit, p*max(stride, pageSize))
		done += n
		if err != nil {
			return Throughput{}, err
		}
	}
	t := Throughput{Rows: done, Elapsed: time.Since(start)}
	if t.Rows != int64(rows) {
		return t, fmt.Errorf("rotate php: %d rows, want %d", t.Rows, rows)
	}
	return t, nil
}

type phpRow struct {
	id    int64
	key   string
	group string
	owner *int64
	value string
}

func (e *Env) phpPage(ctx context.Context, limit, offset int) (int64, error) {
	rows, err := e.Pool.Query(ctx, phpPageSQL, limit, offset)
	if err != nil {
		return 0, fmt.Errorf("rotate php: %w", err)
	}
	page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (phpRow, error) {
		var p phpRow
		return p, r.Scan(&p.id, &p.key, &p.group, &p.owner, &p.value)
	})
	if err != nil {
		return 0, fmt.Errorf("rotate php: %w", err)
	}
	var done int64
	for _, r := range page {
		n := secrets.Name{Group: r.group, Owner: r.owner, Key: r.key}
		pt, _, err := e.Ring.Open(n, r.value)
		if err != nil {
			return done, fmt.Errorf("rotate php: row %d: %w", r.id, err)
		}
		v, err := e.Ring.Seal(n, pt)
		if err != nil {
			return done, fmt.Errorf("rotate php: row %d: %w", r.id, err)
		}
		tag, err := e.Pool.Exec(ctx, "UPDATE secrets SET value = $1 WHERE id = $2", v, r.id)
		if err != nil {
			return done, fmt.Errorf("rotate php: row %d: %w", r.id, err)
		}
		done += tag.RowsAffected()
	}
	return done, nil
}

// RotateSqlsecrets is rotation.Rotate from the old key to the new one,
// with opts. Every seeded row must be rotated.
func (e *Env) RotateSqlsecrets(ctx context.Context, opts rotation.Options) (Throughput, error) {
	start := time.Now()
	res, err := rotation.Rotate(ctx, e.Pool, e.Ring, opts)
	t := Throughput{Rows: res.Rotated, Elapsed: time.Since(start)}
	if err != nil {
		return t, err
	}
	if res.Failed > 0 || res.Skipped > 0 {
		return t, fmt.Errorf("rotate: %d rotated, %d skipped, %d failed; want all rotated",
			res.Rotated, res.Skipped, res.Failed)
	}
	return t, e.checkRows("rotate", t.Rows)
}

func (e *Env) checkRows(what string, got int64) error {
	if got != int64(e.rows) {
		return fmt.Errorf("%s: %d rows, want %d", what, got, e.rows)
	}
	return nil
}

// RotationWorkers returns the worker counts to measure Rotate with, 0
// standing for the default options: 0, 1, 2 and 4 when rotation.Options
// has a worker knob (see setWorkers), else 0 alone.
func RotationWorkers() []int {
	if !setWorkers(&rotation.Options{}, 1) {
		return []int{0}
	}
	return []int{0, 1, 2, 4}
}

// RotationOptions returns the options that run Rotate with n workers, 0
// for the defaults. It fails for n > 0 when rotation.Options has no
// worker knob.
func RotationOptions(n int) (rotation.Options, error) {
	var opts rotation.Options
	if n > 0 && !setWorkers(&opts, n) {
		return opts, fmt.Errorf("rotation.Options has no worker knob")
	}
	return opts, nil
}

// setWorkers sets the number of workers in opts and reports whether it
// could. It is the one place that names the field: against a rotation
// package without Options.Workers, its body becomes `return false` and
// the rest measures the default options alone. TestWorkersKnob checks
// that this line matches rotation.Options.
func setWorkers(opts *rotation.Options, n int) bool { opts.Workers = n; return true }
