package importer

import (
	"errors"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// batch is one batch of records, sealed.
type batch struct {
	sealed  *secrets.Sealed
	records int // how many records the batch was made of, repeats included
}

// sealBatch seals recs with the current key of ring, as secrets.SealMany
// does: the last record wins for a name given more than once. An invalid
// record is a *LineError for the first such line, with the cause that
// secrets.SetMany would give.
//
// Sealing on more than one goroutine was measured on 2 processors, which
// PostgreSQL shares, and gained nothing: the writing is the slower side.
func sealBatch(ring *secrets.Keyring, recs []Record) (*batch, error) {
	entries := make([]secrets.Entry, len(recs))
	for i, rec := range recs {
		entries[i] = secrets.Entry{Name: rec.Name, Value: rec.Value}
	}
	sealed, err := secrets.SealMany(ring, entries)
	if ie, ok := errors.AsType[*secrets.IndexError](err); ok {
		return nil, &LineError{Line: recs[ie.Index].Line, Err: ie.Err}
	}
	if err != nil {
		return nil, err
	}
	return &batch{sealed: sealed, records: len(recs)}, nil
}
