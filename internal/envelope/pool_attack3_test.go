package envelope

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
)

// Attacks on the per-Key pool of HMAC and CBC state and scratch buffers,
// and on the chunked base64 of encodeV1 and decodeString. Messages never
// print a plaintext or a key.

type attack3Vector struct {
	Name      string `json:"name"`
	MasterHex string `json:"master_key_hex"`
	Group     string `json:"group"`
	Owner     *int64 `json:"owner"`
	Key       string `json:"key"`
	IVHex     string `json:"iv_hex"`
	Plaintext string `json:"plaintext"`
	Value     string `json:"value"`
}

func attack3Vectors(t *testing.T) []attack3Vector {
	t.Helper()
	data, err := os.ReadFile("../../testdata/envelope-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []attack3Vector `json:"vectors"`
	}
	if err := json.Unmarshal(data, &f); err != nil || len(f.Vectors) == 0 {
		t.Fatalf("vectors: %v (%d)", err, len(f.Vectors))
	}
	return f.Vectors
}

func attack3Scope(v attack3Vector) Scope {
	sc := Scope{Group: v.Group, Key: v.Key}
	if v.Owner != nil {
		sc.Owner, sc.HasOwner = *v.Owner, true
	}
	return sc
}

// badValues derives, from one good value, values that must fail to open
// in every way Parse and Open can fail: each leaves the Key's pooled state
// at a different point.
func badValues(good string) map[string]string {
	body := strings.TrimPrefix(good, Prefix)
	flip := []byte(body)
	flip[len(flip)-2] ^= 1 // in the tag
	flipCT := []byte(body)
	flipCT[len(flipCT)/2] ^= 1 // in the ciphertext
	wrongKID := []byte(body)
	if wrongKID[0] == 'A' {
		wrongKID[0] = 'B'
	} else {
		wrongKID[0] = 'A'
	}
	return map[string]string{
		"tampered tag":      Prefix + string(flip),
		"tampered ct":       Prefix + string(flipCT),
		"truncated":         good[:len(good)-5],
		"truncated block":   Prefix + encoding.EncodeToString(mustDecode(body)[:len(mustDecode(body))-16]),
		"bad base64":        Prefix + body[:10] + "*" + body[11:],
		"padding char":      Prefix + body + "=",
		"crlf inside":       Prefix + body[:8] + "\r\n" + body[8:],
		"lf inside":         Prefix + body[:300%len(body)] + "\n" + body[300%len(body):],
		"wrong kid":         Prefix + string(wrongKID),
		"no prefix":         body,
		"empty":             "",
		"prefix only":       Prefix,
		"trailing garbage":  good + "A",
		"non-ascii inside":  Prefix + body[:4] + "é" + body[4:],
		"second chunk junk": Prefix + body[:min(len(body)-1, 260)] + "!" + body[min(len(body)-1, 260)+1:],
	}
}

func mustDecode(s string) []byte {
	b, err := encoding.DecodeString(s)
	if err != nil {
		panic("test value does not decode")
	}
	return b
}

// TestAttack3InterleavedFailuresThenVectors drives one Key per master key
// through every failure, then checks that each vector still seals to its
// exact bytes and opens: a failed Open must leave no HMAC or CBC state
// behind.
func TestAttack3InterleavedFailuresThenVectors(t *testing.T) {
	vectors := attack3Vectors(t)
	keys := map[string]*Key{}
	for _, v := range vectors {
		if keys[v.MasterHex] != nil {
			continue
		}
		master, err := hex.DecodeString(v.MasterHex)
		if err != nil {
			t.Fatalf("vector %s: master is not hex", v.Name)
		}
		if keys[v.MasterHex], err = NewKey(master); err != nil {
			t.Fatalf("vector %s: %v", v.Name, err)
		}
	}
	big := bytes.Repeat([]byte("x"), 40<<10) // outgrows the pooled buffers
	for round := range 3 {
		for _, v := range vectors {
			k := keys[v.MasterHex]
			sc := attack3Scope(v)
			for what, bad := range badValues(v.Value) {
				if s, err := Parse(bad); err == nil {
					if _, err := k.Open(sc, s); err == nil {
						t.Errorf("round %d, vector %s: %s opened", round, v.Name, what)
					}
				}
				// A good open right after the failure, on the same Key.
				s, err := Parse(v.Value)
				if err != nil {
					t.Fatalf("vector %s: parse: %v", v.Name, err)
				}
				pt, err := k.Open(sc, s)
				if err != nil || string(pt) != v.Plaintext {
					t.Errorf("round %d, vector %s: open after %s: %v, or the plaintext differs",
						round, v.Name, what, err)
				}
			}
			// A value under a different scope fails, then a big seal, then the vector.
			other := sc
			other.Key += "x"
			if s, err := Parse(v.Value); err == nil {
				if _, err := k.Open(other, s); err == nil {
					t.Errorf("vector %s: opened under another scope", v.Name)
				}
			}
			if _, err := k.Seal(sc, big, rand.Reader); err != nil {
				t.Fatal(err)
			}
			iv, _ := hex.DecodeString(v.IVHex)
			got, err := k.SealWithIV(sc, []byte(v.Plaintext), [IVSize]byte(iv))
			if err != nil || got != v.Value {
				t.Errorf("round %d, vector %s: sealed value differs from the known answer (%v)",
					round, v.Name, err)
			}
		}
	}
}

// TestAttack3ConcurrentSealOpenOneKey runs Seals and Opens, good and bad,
// of many sizes on one Key from many goroutines (run it with -race). Every
// good value must open to its own plaintext and every vector must seal to
// its bytes.
func TestAttack3ConcurrentSealOpenOneKey(t *testing.T) {
	vectors := attack3Vectors(t)
	v0 := vectors[0]
	master, _ := hex.DecodeString(v0.MasterHex)
	k, err := NewKey(master)
	if err != nil {
		t.Fatal(err)
	}
	var mine []attack3Vector
	for _, v := range vectors {
		if v.MasterHex == v0.MasterHex {
			mine = append(mine, v)
		}
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				n := (g*977 + i*131) % 5000
				pt := bytes.Repeat([]byte{byte('a' + g)}, n)
				sc := Scope{Group: "g", Key: strings.Repeat("k", 1+g), Owner: int64(i), HasOwner: i%2 == 0}
				val, err := k.Seal(sc, pt, rand.Reader)
				if err != nil {
					t.Errorf("seal: %v", err)
					return
				}
				for what, bad := range badValues(val) {
					if s, err := Parse(bad); err == nil {
						if _, err := k.Open(sc, s); err == nil {
							t.Errorf("goroutine %d: %s opened", g, what)
						}
					}
				}
				s, err := Parse(val)
				if err != nil {
					t.Errorf("parse of a fresh value: %v", err)
					return
				}
				got, err := k.Open(sc, s)
				if err != nil || !bytes.Equal(got, pt) {
					t.Errorf("goroutine %d, size %d: %v, or another plaintext came back", g, n, err)
				}
				v := mine[i%len(mine)]
				iv, _ := hex.DecodeString(v.IVHex)
				sealed, err := k.SealWithIV(attack3Scope(v), []byte(v.Plaintext), [IVSize]byte(iv))
				if err != nil || sealed != v.Value {
					t.Errorf("goroutine %d: vector %s sealed to other bytes (%v)", g, v.Name, err)
				}
			}
		})
	}
	wg.Wait()
}

// TestAttack3NoPlaintextInPool seals recognisable plaintexts of many sizes,
// opens them, fails to open others, and then inspects every state the pool
// hands back: no scratch buffer may hold a plaintext.
func TestAttack3NoPlaintextInPool(t *testing.T) {
	k, err := NewKey(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	marker := []byte("PLAINTEXT-MARKER-0123456789")
	sc := Scope{Group: "g", Key: "k"}
	for n := range 40 {
		pt := bytes.Repeat(marker, 1+n*20)
		val, err := k.Seal(sc, pt, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := Parse(val)
		if _, err := k.Open(sc, s); err != nil {
			t.Fatal(err)
		}
		if s, err := Parse(badValues(val)["tampered ct"]); err == nil {
			_, _ = k.Open(sc, s)
		}
	}
	// The rand reader fails after the IV was requested: the state goes
	// back with whatever seal had put in it.
	_, _ = k.Seal(sc, bytes.Repeat(marker, 3), failingRand{})
	_, _ = k.Seal(Scope{Group: strings.Repeat("g", MaxNameLen+1), Key: "k"}, bytes.Repeat(marker, 3), rand.Reader)

	var held []*state
	seen := 0
	for range 64 {
		st := k.getState()
		held = append(held, st)
		if st.raw == nil && st.hdr == nil {
			continue // a fresh state
		}
		seen++
		for name, buf := range map[string][]byte{"raw": st.raw[:cap(st.raw)], "hdr": st.hdr[:cap(st.hdr)]} {
			if bytes.Contains(buf, marker[:16]) {
				t.Errorf("a pooled state's %s buffer holds plaintext", name)
			}
		}
		if st.mac.Size() != TagSize {
			t.Errorf("pooled HMAC has size %d", st.mac.Size())
		}
	}
	for _, st := range held {
		k.putState(st)
	}
	t.Logf("inspected %d used states", seen)
}

type failingRand struct{}

func (failingRand) Read([]byte) (int, error) { return 0, os.ErrClosed }

// TestAttack3ChunkedBase64 checks encodeV1 and decodeString against the
// plain encoder and decoder at every length around the 192-byte and
// 256-character chunk borders, and that every corrupted text is refused
// exactly when DecodeString refuses it.
func TestAttack3ChunkedBase64(t *testing.T) {
	for n := 0; n < 3*192+10; n++ {
		raw := make([]byte, n)
		_, _ = rand.Read(raw)
		want := Prefix + encoding.EncodeToString(raw)
		if got := encodeV1(raw); got != want {
			t.Fatalf("len %d: chunked encoding differs", n)
		}
		text := want[len(Prefix):]
		got, err := decodeString(text)
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("len %d: chunked decoding differs (%v)", n, err)
		}
		for _, pos := range []int{0, len(text) / 2, len(text) - 1, 255, 256, 257, 511, 512} {
			if pos < 0 || pos >= len(text) {
				continue
			}
			for _, c := range []byte{'=', '+', '/', '.', ' ', 0, 0xff, 'A', '_', '-'} {
				bad := []byte(text)
				bad[pos] = c
				_, err1 := encoding.DecodeString(string(bad))
				_, err2 := decodeString(string(bad))
				if (err1 == nil) != (err2 == nil) {
					t.Errorf("len %d, byte %d set to %#x: DecodeString err=%v, chunked err=%v",
						n, pos, c, err1 != nil, err2 != nil)
				}
			}
		}
	}
}
