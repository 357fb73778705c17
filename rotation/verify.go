package rotation

import (
	"context"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// Report is what Verify found. Total is Current + Previous + Unreadable.
type Report struct {
	Total int64

	// Current rows are in the v1 format under the ring's current key.
	Current int64

	// Previous rows open with another key of the ring, or are legacy rows:
	// they are readable, and Rotate would move them.
	Previous int64

	// Legacy rows, counted in Previous too, are in the PHP original's
	// format and opened only because the ring reads it; turn legacy reads
	// off once this is 0.
	Legacy int64

	// Unreadable rows open with no key of the ring: sealed with a key the
	// ring lacks, or altered. Failures lists them.
	Unreadable int64
	Failures   []Failure
}

// Verify opens every row with ring, checking each one's integrity, and
// counts which key it is under. Drop a previous key only once a Verify
// with the ring that lacks it reports no unreadable rows.
func Verify(ctx context.Context, db secrets.DBTX, ring *secrets.Keyring,
	opts Options) (Report, error) {
	v := &verifier{ring: ring}
	t, err := walk(ctx, db, ring, opts, verifyClass, v)
	return Report{
		Total: t.a + t.b + t.failed, Current: t.a, Previous: t.b, Legacy: t.legacy,
		Unreadable: t.failed, Failures: t.failures,
	}, err
}

type verifier struct{ ring *secrets.Keyring }

// prepare opens every row of b and counts the key it is under.
func (v *verifier) prepare(b *batch) {
	for _, rw := range b.rows {
		pt, current, err := v.ring.Open(rw.name, rw.value)
		clear(pt)
		switch {
		case err != nil:
			b.t.fail(rw, err)
		case current:
			b.t.a++
		default:
			b.t.b++
			if secrets.IsLegacy(rw.value) {
				b.t.legacy++
			}
		}
	}
}

// write has nothing to write.
func (v *verifier) write(context.Context, secrets.DBTX, *batch) error { return nil }
