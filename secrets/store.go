package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Store reads and writes the secrets of one scope: a group and, optionally,
// an owner. It is a small value: Group, Owner, NoOwner and Model return new
// stores and never change the one they are called on, so a Store can be
// shared between goroutines and kept in a struct field.
//
// The zero Store has no keyring; make one with New.
type Store struct {
	ring     *Keyring
	group    string
	owner    int64
	hasOwner bool
}

// New returns a store over ring in the default scope: group "global", no
// owner.
func New(ring *Keyring) Store {
	return Store{ring: ring, group: DefaultGroup}
}

// Group returns a store for group g with the same owner. An invalid group
// makes every call of the returned store fail with ErrInvalidArgument.
func (s Store) Group(g string) Store {
	s.group = g
	return s
}

// Owner returns a store for owner id in the same group. Owners are 0 or
// more; 0 is an owner like any other, not "no owner".
func (s Store) Owner(id int64) Store {
	s.owner, s.hasOwner = id, true
	return s
}

// NoOwner returns a store for the same group without an owner. It sees only
// secrets that have no owner.
func (s Store) NoOwner() Store {
	s.owner, s.hasOwner = 0, false
	return s
}

// Model returns a store scoped to one record of an application model: the
// model's group (a table name, say) and the record's id.
func (s Store) Model(group string, id int64) Store {
	return s.Group(group).Owner(id)
}

// Name returns the name of the secret key in this store's scope.
func (s Store) Name(key string) Name {
	n := Name{Group: s.group, Key: key}
	if s.hasOwner {
		owner := s.owner
		n.Owner = &owner
	}
	return n
}

// String returns the scope, for example "users/42" or "global".
func (s Store) String() string { return s.Name("").Scope() }

// Set stores value under key, replacing what was there. value is anything
// encoding/json can encode; a json.RawMessage is stored compacted, with
// every number and escape as given. Text that is not valid UTF-8 is refused
// with ErrInvalidArgument, never replaced. It is one upsert statement.
func (s Store) Set(ctx context.Context, db DBTX, key string, value any) error {
	n := s.Name(key)
	sealed, err := s.seal(n, value)
	if err != nil {
		return &OpError{"set", n, err}
	}
	if err := storeValue(ctx, db, n, sealed); err != nil {
		return &OpError{"set", n, err}
	}
	return nil
}

// GetJSON returns the JSON text stored under key. It returns ErrNotFound
// when there is none, ErrWrongKey or ErrIntegrity when the stored value
// does not open. It is one query; nothing is cached.
func (s Store) GetJSON(ctx context.Context, db DBTX, key string) (json.RawMessage, error) {
	n := s.Name(key)
	if err := s.checkRing(); err != nil {
		return nil, &OpError{"get", n, err}
	}
	if err := n.validate(false); err != nil {
		return nil, &OpError{"get", n, err}
	}
	stored, err := loadValue(ctx, db, n)
	if errors.Is(err, errNoRow) {
		return nil, &OpError{"get", n, ErrNotFound}
	}
	if err != nil {
		return nil, &OpError{"get", n, err}
	}
	pt, _, err := s.ring.open(n, stored)
	if err != nil {
		return nil, &OpError{"get", n, err}
	}
	return pt, nil
}

// Get returns the value stored under key, decoded as encoding/json decodes
// into an interface value except that numbers are json.Number, so they
// keep every digit. A stored null is (nil, nil); a missing secret is
// ErrNotFound.
func (s Store) Get(ctx context.Context, db DBTX, key string) (any, error) {
	return GetAs[any](ctx, s, db, key)
}

// GetAs returns the value stored under key in the scope of s, decoded into
// a T. Numbers decoded into an interface type are json.Number.
func GetAs[T any](ctx context.Context, s Store, db DBTX, key string) (T, error) {
	var v T
	pt, err := s.GetJSON(ctx, db, key)
	if err != nil {
		return v, err
	}
	if err := decodeValue(pt, &v); err != nil {
		// The decoder's message can quote part of the value; leave it out.
		return v, &OpError{"get", s.Name(key), fmt.Errorf("stored JSON does not decode into %T", v)}
	}
	return v, nil
}

// Delete removes the secret stored under key and reports whether there was
// one. It needs no keyring.
func (s Store) Delete(ctx context.Context, db DBTX, key string) (bool, error) {
	n := s.Name(key)
	if err := n.validate(false); err != nil {
		return false, &OpError{"delete", n, err}
	}
	deleted, err := deleteValue(ctx, db, n)
	if err != nil {
		return false, &OpError{"delete", n, err}
	}
	return deleted, nil
}

// List returns the secrets of this scope, by key, without their values.
// Nothing is decrypted, so it needs no keyring: Store{}.Group("users")
// lists too.
func (s Store) List(ctx context.Context, db DBTX) ([]Info, error) {
	n := s.Name("")
	if err := n.validate(true); err != nil {
		return nil, &OpError{"list", n, err}
	}
	infos, err := listScope(ctx, db, n)
	if err != nil {
		return nil, &OpError{"list", n, err}
	}
	return infos, nil
}

// ListAll returns every secret of every scope, without values, ordered by
// group, owner and key.
func ListAll(ctx context.Context, db DBTX) ([]Info, error) {
	infos, err := listAll(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("list all: %w", err)
	}
	return infos, nil
}

// Entry is one secret to write with SetMany. It prints its name and hides
// its value in every fmt verb and in slog, so that an Entry logged by
// mistake leaks nothing; json.Marshal, which is never by mistake, shows it.
type Entry struct {
	Name  Name
	Value any
}

// String returns the name and a placeholder for the value.
func (e Entry) String() string { return "secrets.Entry{" + e.Name.String() + ", value redacted}" }

// GoString is String.
func (e Entry) GoString() string { return e.String() }

// Format prints String for every verb.
func (e Entry) Format(f fmt.State, _ rune) { io.WriteString(f, e.String()) }

// LogValue is String, for log/slog.
func (e Entry) LogValue() slog.Value { return slog.StringValue(e.String()) }

// SetMany seals every entry with the current key of ring and writes them
// all in one statement, so that they land together or not at all. When
// the same name appears more than once, the last entry wins. An entry
// that is invalid fails the whole call before any SQL runs, with an
// *IndexError that says which one. It is SealMany and then Sealed.Write.
func SetMany(ctx context.Context, db DBTX, ring *Keyring, entries []Entry) error {
	sealed, err := SealMany(ring, entries)
	if err != nil {
		return err
	}
	return sealed.Write(ctx, db)
}

// Sealed is a set of entries sealed by SealMany, ready to be written. It
// holds ciphertext only, so a caller can seal the next set while this one
// is being written.
type Sealed struct {
	names  []Name
	values []string
}

// SealMany seals every entry with the current key of ring, the last entry
// winning for a name given more than once. An invalid entry is an
// *IndexError that says which one. Nothing touches the database.
func SealMany(ring *Keyring, entries []Entry) (*Sealed, error) {
	s := New(ring)
	index := make(map[nameKey]int, len(entries))
	out := &Sealed{
		names:  make([]Name, 0, len(entries)),
		values: make([]string, 0, len(entries)),
	}
	for i, e := range entries {
		v, err := s.seal(e.Name, e.Value)
		if err != nil {
			return nil, &IndexError{Index: i, Err: &OpError{"set", e.Name, err}}
		}
		id := e.Name.key()
		if j, dup := index[id]; dup {
			out.values[j] = v
			continue
		}
		index[id] = len(out.names)
		out.names = append(out.names, e.Name)
		out.values = append(out.values, v)
	}
	return out, nil
}

// Len returns how many secrets Write writes.
func (b *Sealed) Len() int { return len(b.names) }

// Write writes the sealed entries in one statement: all of them or, on an
// error, none.
func (b *Sealed) Write(ctx context.Context, db DBTX) error {
	if len(b.names) == 0 {
		return nil
	}
	if err := storeValues(ctx, db, b.names, b.values); err != nil {
		return fmt.Errorf("set %d secrets: %w", len(b.names), err)
	}
	return nil
}

// Insert writes the sealed entries as new rows with one COPY, which is
// faster than Write for secrets that are not stored yet: all of them or,
// on an error, none. When one of them is stored already it writes nothing
// and returns an error that matches ErrExists; Write overwrites instead.
//
// With db a pgx.Tx, the COPY runs in a savepoint, so the transaction
// survives ErrExists. In a transaction begun with SQL on a connection, a
// failed Insert aborts that transaction, like any failed statement.
func (b *Sealed) Insert(ctx context.Context, db DBTX) error {
	if len(b.names) == 0 {
		return nil
	}
	if err := insertValues(ctx, db, b.names, b.values); err != nil {
		return fmt.Errorf("insert %d secrets: %w", len(b.names), err)
	}
	return nil
}

// checkRing fails for a store without a usable keyring.
func (s Store) checkRing() error {
	_, err := s.ring.usable()
	return err
}

// seal seals the JSON of value for n; Keyring.Seal validates n.
func (s Store) seal(n Name, value any) (string, error) {
	if err := s.checkRing(); err != nil {
		return "", err
	}
	pt, err := encodeValue(value)
	if err != nil {
		return "", err
	}
	return s.ring.Seal(n, pt)
}
