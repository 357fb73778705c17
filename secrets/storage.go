package secrets

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sqlsecrets/sqlsecrets/gen"
)

// DBTX is what every call takes to reach the database: a *pgxpool.Pool, a
// *pgx.Conn or a pgx.Tx.
type DBTX = gen.DBTX

// Info describes one stored secret without its value.
type Info struct {
	ID        int64
	Name      Name
	CreatedAt time.Time
	UpdatedAt time.Time
}

// This file is the one place where the facade reaches SQL. A second
// storage engine replaces these functions, not the methods that call them.

// errNoRow is returned by loadValue when no row matches.
var errNoRow = errors.New("no row")

func loadValue(ctx context.Context, db DBTX, n Name) (string, error) {
	q := gen.New(db)
	var value string
	var err error
	if n.Owner == nil {
		value, err = q.GetGlobalSecret(ctx, gen.GetGlobalSecretParams{Key: n.Key, GroupName: n.Group})
	} else {
		value, err = q.GetSecret(ctx, gen.GetSecretParams{
			Key: n.Key, GroupName: n.Group, OwnerID: *n.Owner,
		})
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return "", errNoRow
	}
	return value, err
}

func storeValue(ctx context.Context, db DBTX, n Name, sealed string) error {
	return gen.New(db).UpsertSecret(ctx, gen.UpsertSecretParams{
		Key: n.Key, GroupName: n.Group, OwnerID: n.Owner, Value: sealed,
	})
}

// storeValues writes many rows in one statement. names must not hold the
// same secret twice.
func storeValues(ctx context.Context, db DBTX, names []Name, sealed []string) error {
	names, sealed = inLockOrder(names, sealed)
	p := gen.UpsertSecretsParams{
		Keys:       make([]string, len(names)),
		GroupNames: make([]string, len(names)),
		OwnerIDs:   make([]int64, len(names)),
		Vals:       sealed,
	}
	for i, n := range names {
		p.Keys[i], p.GroupNames[i], p.OwnerIDs[i] = n.Key, n.Group, -1
		if n.Owner != nil {
			p.OwnerIDs[i] = *n.Owner
		}
	}
	_, err := gen.New(db).UpsertSecrets(ctx, p)
	return err
}

// insertValues writes new rows with one COPY, or nothing and an error
// that matches ErrExists when one of them is stored already. In a pgx.Tx
// the COPY runs in a savepoint, so that the transaction survives a
// failure. names must not hold the same secret twice.
func insertValues(ctx context.Context, db DBTX, names []Name, sealed []string) error {
	names, sealed = inLockOrder(names, sealed)
	rows := make([]gen.InsertSecretsParams, len(names))
	for i, n := range names {
		rows[i] = gen.InsertSecretsParams{
			Key: n.Key, GroupName: n.Group, OwnerID: n.Owner, Value: sealed[i],
		}
	}

	tx, inTx := db.(pgx.Tx)
	if inTx {
		var err error
		if tx, err = tx.Begin(ctx); err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) // a no-op after Commit
		db = tx
	}
	_, err := gen.New(db).InsertSecrets(ctx, rows)
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok &&
		pgErr.Code == uniqueViolation && pgErr.ConstraintName == scopeKey {
		return ErrExists
	}
	if err != nil || !inTx {
		return err
	}
	return tx.Commit(ctx)
}

// uniqueViolation is PostgreSQL's SQLSTATE for a unique constraint
// violation, and scopeKey the constraint that keeps one secret per name.
const (
	uniqueViolation = "23505"
	scopeKey        = "secrets_scope_key"
)

// inLockOrder returns names and sealed in one fixed order, whatever the
// caller's, so that two calls that write the same rows lock them in the
// same order and cannot deadlock.
func inLockOrder(names []Name, sealed []string) ([]Name, []string) {
	order := make([]int, len(names))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return names[a].key().compare(names[b].key()) })
	return permute(names, order), permute(sealed, order)
}

func permute[T any](s []T, order []int) []T {
	out := make([]T, len(order))
	for i, j := range order {
		out[i] = s[j]
	}
	return out
}

func deleteValue(ctx context.Context, db DBTX, n Name) (bool, error) {
	q := gen.New(db)
	var rows int64
	var err error
	if n.Owner == nil {
		rows, err = q.DeleteGlobalSecret(ctx, gen.DeleteGlobalSecretParams{
			Key: n.Key, GroupName: n.Group,
		})
	} else {
		rows, err = q.DeleteSecret(ctx, gen.DeleteSecretParams{
			Key: n.Key, GroupName: n.Group, OwnerID: *n.Owner,
		})
	}
	return rows > 0, err
}

func listScope(ctx context.Context, db DBTX, n Name) ([]Info, error) {
	q := gen.New(db)
	var rows []gen.ListAllSecretsRow
	if n.Owner == nil {
		got, err := q.ListGlobalSecrets(ctx, n.Group)
		if err != nil {
			return nil, err
		}
		for _, r := range got {
			rows = append(rows, gen.ListAllSecretsRow(r))
		}
	} else {
		got, err := q.ListSecrets(ctx, gen.ListSecretsParams{GroupName: n.Group, OwnerID: *n.Owner})
		if err != nil {
			return nil, err
		}
		for _, r := range got {
			rows = append(rows, gen.ListAllSecretsRow(r))
		}
	}
	return infos(rows), nil
}

func listAll(ctx context.Context, db DBTX) ([]Info, error) {
	rows, err := gen.New(db).ListAllSecrets(ctx)
	if err != nil {
		return nil, err
	}
	return infos(rows), nil
}

func infos(rows []gen.ListAllSecretsRow) []Info {
	out := make([]Info, len(rows))
	for i, r := range rows {
		out[i] = Info{
			ID:        r.ID,
			Name:      Name{Group: r.Group, Owner: r.OwnerID, Key: r.Key},
			CreatedAt: r.CreatedAt,
			UpdatedAt: r.UpdatedAt,
		}
	}
	return out
}
