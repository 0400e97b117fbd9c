package header

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/gopacket/gopacket"
)

func TestChecksumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 2100)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	initials := []uint32{0, 1, 0xffff, 0x10000, 0x5ffff, 0xfffffffe, 0xffffffff}
	// Every length up to 200 at every alignment 0..7, catching tail and
	// unrolled-loop boundary mistakes, then random long slices.
	for off := 0; off < 8; off++ {
		for n := 0; n <= 200; n++ {
			for _, init := range initials {
				b := buf[off : off+n]
				if got, want := Checksum(b, init), refChecksum(b, init); got != want {
					t.Fatalf("Checksum(%d bytes at offset %d, %#x) = %#04x, reference gives %#04x", n, off, init, got, want)
				}
			}
		}
	}
	// All-ones data drives the carry chain hardest.
	ones := bytes.Repeat([]byte{0xff}, 300)
	for n := range len(ones) {
		for _, init := range initials {
			if got, want := Checksum(ones[:n], init), refChecksum(ones[:n], init); got != want {
				t.Fatalf("Checksum(%d bytes of 0xff, %#x) = %#04x, reference gives %#04x", n, init, got, want)
			}
		}
	}
	for range 2000 {
		off := r.IntN(64)
		n := r.IntN(len(buf) - off)
		init := r.Uint32()
		b := buf[off : off+n]
		if got, want := Checksum(b, init), refChecksum(b, init); got != want {
			t.Fatalf("Checksum(%d bytes at offset %d, %#x) = %#04x, reference gives %#04x", n, off, init, got, want)
		}
	}
}

func TestChecksumMatchesGopacket(t *testing.T) {
	// gopacket's own (independent) implementation, including its 0xffff
	// bytes, which stress the carry chain.
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 2, 7, 8, 9, 31, 32, 33, 64, 1500, 65535} {
		for _, fill := range []string{"random", "ones"} {
			b := make([]byte, n)
			for i := range b {
				if fill == "ones" {
					b[i] = 0xff
				} else {
					b[i] = byte(r.Uint32())
				}
			}
			want := gopacket.FoldChecksum(gopacket.ComputeChecksum(b, 0))
			if got := ^Checksum(b, 0); got != want {
				t.Errorf("%s %d bytes: ^Checksum = %#04x, gopacket computes %#04x", fill, n, got, want)
			}
		}
	}
}

func TestPseudoHeaderSum(t *testing.T) {
	// The pseudo-header laid out as bytes (RFC 793 3.1) and summed by the
	// reference loop.
	var ph [12]byte
	clientAddr.Put(ph[0:])
	vipAddr.Put(ph[4:])
	ph[9] = ProtoTCP
	binary.BigEndian.PutUint16(ph[10:], 1480)
	if got, want := Checksum(nil, PseudoHeaderSum(ProtoTCP, clientAddr, vipAddr, 1480)), refChecksum(ph[:], 0); got != want {
		t.Errorf("folded PseudoHeaderSum = %#04x, summing the pseudo-header bytes gives %#04x", got, want)
	}
}

// TestUpdateChecksum16Exhaustive changes one word of an IPv4 header through
// all 65536 values (and back to each start value) and compares the
// incremental checksum with a full recomputation every time. This covers the
// 0x0000 versus 0xffff corner that RFC 1624 eqn. 2 gets wrong.
func TestUpdateChecksum16Exhaustive(t *testing.T) {
	h := IPv4(tcpPacket(t, clientAddr, vipAddr, 40000, 8443, nil)[:IPv4MinLen])
	for v := range 0x10000 {
		old := binary.BigEndian.Uint16(h[4:6])
		binary.BigEndian.PutUint16(h[4:6], uint16(v))
		h.SetChecksum(UpdateChecksum16(h.Checksum(), old, uint16(v)))
		if want := h.ComputeChecksum(); h.Checksum() != want {
			t.Fatalf("ID %#04x -> %#04x: incremental checksum %#04x, from scratch %#04x", old, v, h.Checksum(), want)
		}
	}
	// Make the from-scratch checksum exactly 0x0000 and 0xfffe and update
	// into and out of them.
	for _, target := range []uint16{0x0000, 0xfffe, 0x0001} {
		for v := range 0x10000 {
			h.SetID(uint16(v))
			if h.ComputeChecksum() == target {
				break
			}
		}
		if h.ComputeChecksum() != target {
			t.Fatalf("no ID gives checksum %#04x", target)
		}
		if h.Checksum() != target {
			t.Errorf("after SetID, checksum %#04x, from scratch %#04x", h.Checksum(), target)
		}
		if !h.ChecksumValid() {
			t.Errorf("checksum %#04x does not verify", target)
		}
	}
}

func TestUpdateChecksum32(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	h := IPv4(udpPacket(t, clientAddr, vipAddr, 40000, 5353, []byte("q"))[:IPv4MinLen])
	for range 100000 {
		a := Addr(r.Uint32())
		if r.IntN(2) == 0 {
			h.SetSrc(a)
		} else {
			h.SetDst(a)
		}
		if want := h.ComputeChecksum(); h.Checksum() != want {
			t.Fatalf("after setting %v: incremental checksum %#04x, from scratch %#04x", a, h.Checksum(), want)
		}
	}
}

func TestUpdateL4Partial(t *testing.T) {
	// For a partial field, the update must give exactly the pseudo-header sum
	// the kernel would have written for the new address.
	r := rand.New(rand.NewPCG(7, 8))
	for range 100000 {
		src, dst, nsrc := Addr(r.Uint32()), Addr(r.Uint32()), Addr(r.Uint32())
		n := uint16(r.Uint32())
		f := Checksum(nil, PseudoHeaderSum(ProtoTCP, src, dst, n))
		got := UpdateL4ForAddr(f, src, nsrc, true)
		if want := Checksum(nil, PseudoHeaderSum(ProtoTCP, nsrc, dst, n)); got != want {
			t.Fatalf("partial sum for %v -> %v: updated %#04x, from scratch %#04x", src, nsrc, got, want)
		}
		if got := UpdateL4ForPort(f, 1, 2, true); got != f {
			t.Fatalf("partial sum changed by a port change: %#04x -> %#04x", f, got)
		}
	}
}

var sink uint16

func benchData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{20, 64, 576, 1500, 9000, 65535} {
		data := benchData(n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sink = Checksum(data, 0)
			}
		})
	}
}

// BenchmarkChecksumAlternatives measures the loop shapes Checksum was chosen
// from, on the sizes that matter (64: a bare TCP ACK; 1500: a full frame).
func BenchmarkChecksumAlternatives(b *testing.B) {
	for _, n := range []int{64, 1500} {
		data := benchData(n)
		b.Run("littleendian-loads/"+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sink = checksumLittleEndianLoads(data, 0)
			}
		})
		b.Run("unroll32/"+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sink = checksumUnroll32(data, 0)
			}
		})
		b.Run("16bit-reference/"+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sink = refChecksum(data, 0)
			}
		})
	}
}

// checksumLittleEndianLoads is Checksum with plain little-endian loads and
// one byte swap at the end (RFC 1071 2.B) instead of a swap per load.
func checksumLittleEndianLoads(b []byte, initial uint32) uint16 {
	acc := uint64(bits.ReverseBytes16(fold32(initial)))
	var carry uint64
	for len(b) >= 64 {
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:16]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:24]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:32]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[32:40]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[40:48]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[48:56]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[56:64]), carry)
		b = b[64:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b), carry)
		b = b[8:]
	}
	for len(b) >= 2 {
		acc, carry = bits.Add64(acc, uint64(binary.LittleEndian.Uint16(b)), carry)
		b = b[2:]
	}
	if len(b) == 1 {
		acc, carry = bits.Add64(acc, uint64(b[0]), carry)
	}
	return bits.ReverseBytes16(fold64(acc + carry))
}

// checksumUnroll32 is Checksum with 32 bytes per loop iteration instead of 64.
func checksumUnroll32(b []byte, initial uint32) uint16 {
	acc := uint64(initial)
	var carry uint64
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[8:16]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[16:24]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[24:32]), carry)
		b = b[32:]
	}
	for len(b) >= 2 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint16(b)), carry)
		b = b[2:]
	}
	if len(b) == 1 {
		acc, carry = bits.Add64(acc, uint64(b[0])<<8, carry)
	}
	return fold64(acc + carry)
}

func TestChecksumAlternatives(t *testing.T) {
	// The benchmarked alternatives must compute the same thing, or their
	// numbers mean nothing.
	buf := benchData(300)
	for n := range len(buf) {
		want := refChecksum(buf[:n], 0xfffff)
		if got := checksumLittleEndianLoads(buf[:n], 0xfffff); got != want {
			t.Fatalf("checksumLittleEndianLoads(%d bytes) = %#04x, want %#04x", n, got, want)
		}
		if got := checksumUnroll32(buf[:n], 0xfffff); got != want {
			t.Fatalf("checksumUnroll32(%d bytes) = %#04x, want %#04x", n, got, want)
		}
	}
}

func BenchmarkUpdateChecksum16(b *testing.B) {
	c := uint16(0x1234)
	for i := 0; b.Loop(); i++ {
		c = UpdateChecksum16(c, uint16(i), uint16(i+1))
	}
	sink = c
}

func BenchmarkUpdateChecksum32(b *testing.B) {
	c := uint16(0x1234)
	for i := uint32(0); b.Loop(); i++ {
		c = UpdateChecksum32(c, i, i+0x01000001)
	}
	sink = c
}

func BenchmarkUpdateL4ForAddr(b *testing.B) {
	c := uint16(0x1234)
	for i := Addr(0); b.Loop(); i++ {
		c = UpdateL4ForAddr(c, i, i+0x01000001, i&1 == 0)
	}
	sink = c
}
