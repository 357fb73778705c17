package importer

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// writer writes batches to db. It starts with Sealed.Insert, a COPY that
// inserts and cannot overwrite, and falls back to Sealed.Write, the upsert
// of secrets.SetMany, for the batch in which a secret exists already and
// for every batch after it. Either way a batch lands whole or not at all.
type writer struct {
	db     secrets.DBTX
	insert bool
}

func newWriter(db secrets.DBTX) *writer {
	return &writer{db: db, insert: canInsert(db)}
}

// write writes b in one statement: a COPY, or an upsert.
func (w *writer) write(ctx context.Context, b *batch) error {
	if w.insert {
		err := b.sealed.Insert(ctx, w.db)
		if !errors.Is(err, secrets.ErrExists) {
			return err
		}
		w.insert = false
	}
	return b.sealed.Write(ctx, w.db)
}

// canInsert reports whether a batch may try Sealed.Insert on db: a pool,
// a pgx.Tx (where the COPY runs in a savepoint), or a connection outside
// any transaction. On a connection inside a transaction begun with SQL, or
// a handle of another type, an Insert that meets an existing secret would
// abort the caller's transaction, so every batch is an upsert there.
func canInsert(db secrets.DBTX) bool {
	switch db := db.(type) {
	case *pgxpool.Pool, pgx.Tx:
		return true
	case *pgxpool.Conn:
		return db.Conn().PgConn().TxStatus() == 'I'
	case *pgx.Conn:
		return db.PgConn().TxStatus() == 'I'
	}
	return false
}
