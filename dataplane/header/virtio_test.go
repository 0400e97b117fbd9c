package header

import (
	"bytes"
	"testing"
)

func TestVirtioNetHdr(t *testing.T) {
	// What the kernel hands us for a TSO'd TCP super-packet with a partial
	// checksum: NEEDS_CSUM, GSO_TCPV4, hdr_len 66, gso_size 1448,
	// csum_start 20, csum_offset 16, little-endian.
	wire := []byte{0x01, 0x01, 66, 0, 0xa8, 0x05, 20, 0, 16, 0, 0xee}
	h := VirtioNetHdr(wire[:VirtioNetHdrLen])
	if h.Flags() != VirtioNetHdrFNeedsCsum || !h.NeedsCsum() || h.GSOType() != GSOTCPv4 || h.HdrLen() != 66 ||
		h.GSOSize() != 1448 || h.CsumStart() != 20 || h.CsumOffset() != 16 {
		t.Errorf("read flags %d gso %d hdr_len %d gso_size %d csum_start %d csum_offset %d; want 1 1 66 1448 20 16",
			h.Flags(), h.GSOType(), h.HdrLen(), h.GSOSize(), h.CsumStart(), h.CsumOffset())
	}

	out := make([]byte, VirtioNetHdrLen+1)
	o := VirtioNetHdr(out[:VirtioNetHdrLen])
	o.SetFlags(VirtioNetHdrFNeedsCsum)
	o.SetGSOType(GSOTCPv4)
	o.SetHdrLen(66)
	o.SetGSOSize(1448)
	o.SetCsumStart(20)
	o.SetCsumOffset(16)
	if !bytes.Equal(out[:VirtioNetHdrLen], wire[:VirtioNetHdrLen]) {
		t.Errorf("setters wrote %x, want %x", out[:VirtioNetHdrLen], wire[:VirtioNetHdrLen])
	}

	h.Reset()
	if !bytes.Equal(wire, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xee}) || h.NeedsCsum() {
		t.Errorf("Reset left %x; want 10 zero bytes and the packet byte after them untouched", wire)
	}
	if GSOTCPv4|GSOECN != 0x81 || VirtioNetHdrFDataValid != 2 || GSOUDPL4 != 5 {
		t.Error("virtio constants do not match linux/virtio_net.h")
	}
}
