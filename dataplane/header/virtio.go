package header

import "encoding/binary"

// virtio_net_hdr flags and GSO types (linux/virtio_net.h).
const (
	VirtioNetHdrFNeedsCsum = 1 // L4 checksum field holds the pseudo-header sum; sum from CsumStart, store at CsumStart+CsumOffset
	VirtioNetHdrFDataValid = 2 // checksum already verified

	GSONone  = 0
	GSOTCPv4 = 1
	GSOUDP   = 3
	GSOTCPv6 = 4
	GSOUDPL4 = 5
	GSOECN   = 0x80 // flag bit ORed into the GSO type
)

// VirtioNetHdr is a view of the struct virtio_net_hdr (10 bytes) that
// precedes every packet read from or written to a TUN opened with
// IFF_VNET_HDR. Its 16-bit fields are little-endian: virtio 1.0 byte order,
// which is also what a legacy TUN uses on the little-endian hosts we run on.
// The caller slices it from the front of the buffer: b[:VirtioNetHdrLen].
type VirtioNetHdr []byte

// Flags returns the flags byte (VirtioNetHdrFNeedsCsum, VirtioNetHdrFDataValid).
func (h VirtioNetHdr) Flags() uint8 { return h[0] }

// GSOType returns the GSO type (GSONone, GSOTCPv4, ...), GSOECN included.
func (h VirtioNetHdr) GSOType() uint8 { return h[1] }

// HdrLen returns the length of the headers to replicate in each segment.
func (h VirtioNetHdr) HdrLen() uint16 { return binary.LittleEndian.Uint16(h[2:4]) }

// GSOSize returns the payload size of each segment.
func (h VirtioNetHdr) GSOSize() uint16 { return binary.LittleEndian.Uint16(h[4:6]) }

// CsumStart returns the offset, from the start of the packet, at which the
// L4 checksum sum begins.
func (h VirtioNetHdr) CsumStart() uint16 { return binary.LittleEndian.Uint16(h[6:8]) }

// CsumOffset returns the offset of the checksum field from CsumStart.
func (h VirtioNetHdr) CsumOffset() uint16 { return binary.LittleEndian.Uint16(h[8:10]) }

// NeedsCsum reports whether the L4 checksum is partial (NEEDS_CSUM), the
// partial argument of UpdateL4ForAddr and friends.
func (h VirtioNetHdr) NeedsCsum() bool { return h[0]&VirtioNetHdrFNeedsCsum != 0 }

// SetFlags writes the flags byte.
func (h VirtioNetHdr) SetFlags(f uint8) { h[0] = f }

// SetGSOType writes the GSO type.
func (h VirtioNetHdr) SetGSOType(t uint8) { h[1] = t }

// SetHdrLen writes the header length.
func (h VirtioNetHdr) SetHdrLen(n uint16) { binary.LittleEndian.PutUint16(h[2:4], n) }

// SetGSOSize writes the segment payload size.
func (h VirtioNetHdr) SetGSOSize(n uint16) { binary.LittleEndian.PutUint16(h[4:6], n) }

// SetCsumStart writes the checksum start offset.
func (h VirtioNetHdr) SetCsumStart(n uint16) { binary.LittleEndian.PutUint16(h[6:8], n) }

// SetCsumOffset writes the checksum field offset.
func (h VirtioNetHdr) SetCsumOffset(n uint16) { binary.LittleEndian.PutUint16(h[8:10], n) }

// Reset zeroes the header: no checksum offload, no GSO. That is the header
// to write before a packet whose checksums are complete.
func (h VirtioNetHdr) Reset() { clear(h[:VirtioNetHdrLen]) }
