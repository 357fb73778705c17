package envelope_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sqlsecrets/sqlsecrets/internal/envelope"
)

// A Key reuses its HMAC states, CBC modes and buffers from one call to
// the next. These tests check that nothing of one call leaks into the
// next: every vector still seals to its exact bytes on a Key that has
// just opened, failed to open and sealed other values, small and large.

// TestV1VectorsOnReusedKey seals and opens every vector several times
// on one Key per master key, between calls that leave the Key's states
// in every condition: after a failed tag check, after a large value that
// outgrows the pooled buffers, after an empty scope.
func TestV1VectorsOnReusedKey(t *testing.T) {
	f := loadV1(t)
	failing := 0
	for _, v := range f.MustFail {
		for _, w := range f.Vectors {
			if v.MasterHex == w.MasterHex {
				failing++
				break
			}
		}
	}
	if failing == 0 {
		t.Fatal("no must-fail vector shares a master key with a vector")
	}
	keys := map[string]*envelope.Key{}
	keyFor := func(name, masterHex string) *envelope.Key {
		if k, ok := keys[masterHex]; ok {
			return k
		}
		k := newKey(t, name, masterHex)
		keys[masterHex] = k
		return k
	}

	disturb := func(k *envelope.Key, masterHex string) {
		t.Helper()
		for _, v := range f.MustFail {
			if v.MasterHex != masterHex {
				continue
			}
			if _, err := parseOpen(k, scopeOf(v.Group, v.Owner, v.Key), v.Value); err == nil {
				t.Fatalf("must-fail vector %q opened", v.Name)
			}
		}
		for _, size := range []int{0, 15, 16, 100, 40 << 10} {
			pt := bytes.Repeat([]byte{'7'}, size)
			sc := envelope.Scope{Group: strings.Repeat("g", size%300), Key: "k"}
			v, err := k.Seal(sc, pt, rand.Reader)
			if err != nil {
				t.Fatalf("Seal of %d bytes: %v", size, err)
			}
			if got, err := parseOpen(k, sc, v); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("a %d-byte value does not open to its input", size)
			}
			if _, err := parseOpen(k, testScope, v); err == nil {
				t.Fatalf("a %d-byte value opened in another scope", size)
			}
		}
	}

	for round := range 3 {
		for _, v := range f.Vectors {
			k := keyFor(v.Name, v.MasterHex)
			disturb(k, v.MasterHex)

			iv, err := hex.DecodeString(v.IVHex)
			if err != nil || len(iv) != envelope.IVSize {
				t.Fatalf("vector %q: bad iv_hex", v.Name)
			}
			sc := scopeOf(v.Group, v.Owner, v.Key)
			got, err := k.SealWithIV(sc, []byte(v.Plaintext), [envelope.IVSize]byte(iv))
			if err != nil {
				t.Fatalf("round %d, vector %q: SealWithIV: %v", round, v.Name, err)
			}
			if got != v.Value {
				t.Errorf("round %d, vector %q: sealed value differs from the vector", round, v.Name)
			}
			pt, err := parseOpen(k, sc, v.Value)
			if err != nil || string(pt) != v.Plaintext {
				t.Errorf("round %d, vector %q: does not open to its plaintext", round, v.Name)
			}
		}
	}
}

// TestKeyConcurrentUse seals and opens on one Key from many goroutines.
// Run with -race, it also checks that the Key's reused states are never
// shared between two calls at once.
func TestKeyConcurrentUse(t *testing.T) {
	k := fuzzKey(t)
	const workers, rounds = 8, 200

	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				sc := envelope.Scope{Group: fmt.Sprint("g", w), Key: "k"}
				sc.Owner, sc.HasOwner = int64(i), true
				pt := bytes.Repeat([]byte{byte('a' + w)}, (w*rounds+i)%300)
				v, err := k.Seal(sc, pt, rand.Reader)
				if err != nil {
					errs <- fmt.Errorf("worker %d: Seal: %w", w, err)
					return
				}
				got, err := parseOpen(k, sc, v)
				if err != nil || !bytes.Equal(got, pt) {
					errs <- fmt.Errorf("worker %d, round %d: value does not open", w, i)
					return
				}
				sc.Owner++
				if _, err := parseOpen(k, sc, v); err == nil {
					errs <- fmt.Errorf("worker %d, round %d: value opened for another owner", w, i)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
