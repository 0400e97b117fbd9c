// Package header provides typed views over IPv4, TCP, UDP, ICMPv4 and
// virtio-net header bytes, and the one's-complement checksum arithmetic the
// dataplane needs to rewrite packets in place.
//
// A header is a named byte slice, never a decoded struct: reading a field is
// a bounds-checked load from the packet buffer and writing one is a store
// into it, so nothing here allocates (String methods excepted). Parse
// functions validate lengths once at the edge of the pipeline; accessors on a
// view that came from a Parse function cannot panic, and accessors on an
// unvalidated slice may.
package header
